"""app.services(): the service graph is built once, also when `chalice local`'s threads ask for
it at the same moment."""

from __future__ import annotations

import threading

import app


def test_concurrent_first_requests_build_the_graph_once(monkeypatch):
    builds: list[object] = []
    inside = threading.Event()
    release = threading.Event()

    def slow_build(settings):
        graph = object()
        builds.append(graph)
        inside.set()
        release.wait(10)  # the first build is still running while the others ask
        return graph

    monkeypatch.setattr(app, "_services", None)
    monkeypatch.setattr(app.runtime, "build", slow_build)
    monkeypatch.setattr(app.Settings, "from_env", classmethod(lambda cls: None))
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(app.services())) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert inside.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)

    assert len(builds) == 1
    assert got == builds * 8
