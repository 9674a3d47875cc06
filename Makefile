# wxauth: `make run` starts the local server, `make test` runs every test.
# Both create the virtual environment and install the locked dependencies first.
SHELL := /bin/bash
# Python 3.13, the Lambda runtime's: $(PYTHON) if set, else python3.13 on PATH, else pyenv's
# (tools/find-python.sh says what to install when there is none).
FIND_PYTHON := tools/find-python.sh
PYTHON_VERSION := 3.13
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make run` needs less than `make test`: requirements-run.txt, its own stamp in the same .venv.
RUN_STAMP := $(VENV)/.installed-run
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps

# `venv_is_current DIR`: the version of DIR's python ("" if none). A venv made with another
# Python than $(PYTHON_VERSION) is made again (`make_venv DIR`), not reused.
venv_version = $(1)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
venv_is_current = $(shell $(call venv_version,$(1)))
make_venv = test "$$($(call venv_version,$(1)))" = $(PYTHON_VERSION) \
	|| { python=$$($(FIND_PYTHON)) && rm -rf $(1) && "$$python" -m venv $(1); }

.PHONY: run test test-fast test-js lint install clean

install: $(STAMP)

ifneq ($(call venv_is_current,$(VENV)),$(PYTHON_VERSION))
.PHONY: $(STAMP) $(RUN_STAMP)
endif

# Exactly the versions (and files: --require-hashes) of requirements-dev.txt, then the project
# itself, editable, built with the locked setuptools, without resolving anything again.
$(STAMP): pyproject.toml requirements-dev.txt
	$(call make_venv,$(VENV))
	$(PY) $(PIP_INSTALL) -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# What serving needs and no more (requirements-run.txt: the service's dependencies, Chalice and
# moto; no test tools), with the same hashes and versions as the dev lock. The server runs from
# the checkout (`python -m devserver`), so the project itself is not installed.
$(RUN_STAMP): requirements-run.txt
	$(call make_venv,$(VENV))
	$(PY) $(PIP_INSTALL) -r requirements-run.txt
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	exec $(PY) -m devserver

# The whole suite; the 20 slowest tests and fixtures are listed at the end (docs/contributors.md,
# "Testing").
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest --durations=20

# The unit tests only, for the edit loop (about a minute): no DynamoDB Local, no server over
# HTTP, no packaging; `make test` runs them all.
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -p no:schemathesis -m "not integration" --ignore=tests/integration \
		--ignore=tests/infra --durations=10

# The mini-program client's tests (node's built-in runner; they start the local server from
# .venv on DynamoDB Local), after `npm ci` of its devDependencies (TypeScript, for the package
# test's type check; npm_config_registry picks a mirror). See clients/miniprogram/README.md.
JS_CLIENT := clients/miniprogram
JS_STAMP := $(JS_CLIENT)/node_modules/.installed

$(JS_STAMP): $(JS_CLIENT)/package-lock.json
	npm ci --prefix $(JS_CLIENT) --no-audit --no-fund --loglevel=error
	touch $@

test-js: $(STAMP) $(JS_STAMP)
	node --test $(JS_CLIENT)/test/

# The Node verification recipe (examples/verify/, docs/backend.md "Verify tokens in your
# backend") against the local server from .venv, after `npm ci` of its one dependency (jose).
# The Python recipe's test is tests/integration/test_verify_recipes.py, run by pytest.
EXAMPLES_NODE := examples/verify/node
EXAMPLES_STAMP := $(EXAMPLES_NODE)/node_modules/.installed

$(EXAMPLES_STAMP): $(EXAMPLES_NODE)/package-lock.json
	npm ci --prefix $(EXAMPLES_NODE) --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: test-examples
test-examples: $(STAMP) $(EXAMPLES_STAMP)
	node --test $(EXAMPLES_NODE)/

test: test-examples

test: test-js

# The device login's demo page is tested in headless Chromium (tests/integration/
# test_device_demo.py, about 15 s): Debian's `chromium`, installed here when missing (apt-get as
# root, else through sudo; about 30 s on a fresh machine). No browser is downloaded otherwise.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		$$sudo apt-get update -qq \
		&& $$sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium; }

test: chromium

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .cache .wxauth build *.egg-info $(JS_CLIENT)/node_modules \
		$(EXAMPLES_NODE)/node_modules

# -- AWS deployment (infra/, docs/operators.md "Deploy to AWS") ------------------------------------
# `make package` builds build/infra/sam.yaml + deployment.zip (Chalice's template merged with
# infra/resources.yaml) and checks the zip; `make infra-lint` lints that template with cfn-lint
# and checkov from their own venv; `make deploy` deploys it with the AWS CLI.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
INFRA_OUT := build/infra

.PHONY: package infra-lint deploy infra-clean

ifneq ($(call venv_is_current,$(INFRA_VENV)),$(PYTHON_VERSION))
.PHONY: $(INFRA_STAMP)
endif

$(INFRA_STAMP): infra/requirements-lint.txt
	$(call make_venv,$(INFRA_VENV))
	$(INFRA_VENV)/bin/python $(PIP_INSTALL) --no-compile -r infra/requirements-lint.txt
	touch $(INFRA_STAMP)

package: $(STAMP)
	$(PY) infra/build.py $(INFRA_OUT)

infra-lint: package $(INFRA_STAMP)
	$(INFRA_VENV)/bin/python infra/expand_sam.py $(INFRA_OUT)/sam.yaml $(INFRA_OUT)/expanded.json
	$(INFRA_VENV)/bin/cfn-lint $(INFRA_OUT)/sam.yaml $(INFRA_OUT)/expanded.json
	$(INFRA_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		-f $(INFRA_OUT)/sam.yaml -f $(INFRA_OUT)/expanded.json
	$(INFRA_VENV)/bin/shellcheck infra/*.sh tools/*.sh

deploy: $(STAMP)
	infra/deploy.sh

infra-clean:
	rm -rf $(INFRA_VENV) $(INFRA_OUT)

test: infra-lint
clean: infra-clean

# `make bench`: bench/run.py's benchmarks as markdown (not part of `make test`);
# e.g. `make bench BENCH_ARGS="--quick --only verify,refresh"` or BENCH_ARGS="--write after".
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# -- locked dependencies (docs/contributors.md "Reproducible builds") ------------------------------
# `make lock` resolves pyproject.toml again and rewrites, with every version pinned and the
# sha256 of every file PyPI has for it:
#   requirements-dev.txt      everything `make install` puts in .venv (dependencies + [dev]),
#                             resolved for every platform (--universal);
#   requirements-run.txt      what `make run` puts in .venv: the dependencies and the local
#                             server's (requirements-run.in), at the dev lock's versions;
#   requirements.txt          what infra/build.py installs into the Lambda zip: the dependencies
#                             less what the Lambda runtime provides (boto3 and what only it
#                             needs), resolved for the runtime (Python 3.13, aarch64, glibc 2.34)
#                             and held to the dev lock's versions;
#   infra/requirements-lint.txt  .venv-infra, from infra/requirements-lint.in.
# Versions already in a lock are kept unless pyproject.toml needs others; to move everything to
# the newest releases: `make lock LOCK_ARGS=--upgrade` (or --upgrade-package NAME).
# uv runs from its own venv (.venv-lock), never from the app's.
LOCK_VENV := .venv-lock
UV_VERSION := 0.13.9
UV := UV_PYTHON_DOWNLOADS=never $(LOCK_VENV)/bin/uv
# The Lambda runtime provides these (infra/build.py RUNTIME_PROVIDED; tests/test_packaging.py).
LAMBDA_PROVIDED := boto3
LOCK_FLAGS = --quiet --generate-hashes --custom-compile-command "make lock" \
	--python $$($(FIND_PYTHON)) --python-version $(PYTHON_VERSION) $(LOCK_ARGS)

.PHONY: lock
lock:
	$(call make_venv,$(LOCK_VENV))
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip compile $(LOCK_FLAGS) --universal --extra dev pyproject.toml -o requirements-dev.txt
	$(UV) pip compile $(LOCK_FLAGS) --universal -c requirements-dev.txt \
		pyproject.toml requirements-run.in -o requirements-run.txt
	$(UV) pip compile $(LOCK_FLAGS) --python-platform aarch64-manylinux_2_34 \
		--excludes <(printf '%s\n' $(LAMBDA_PROVIDED)) -c requirements-dev.txt \
		pyproject.toml -o requirements.txt
	$(UV) pip compile $(LOCK_FLAGS) --python-platform x86_64-manylinux_2_28 \
		infra/requirements-lint.in -o infra/requirements-lint.txt

clean: lock-clean
.PHONY: lock-clean
lock-clean:
	rm -rf $(LOCK_VENV)
