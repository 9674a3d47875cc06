"""What the operator command lines (`wxauth-admin`) share: ids that begin with `-`.

User and session ids are 22 base64url characters, so one in 64 begins with `-` (and one in 4096
with `--`), which argparse reads as an option: `wxauth-admin user ban -Xy...` would stop at
"the following arguments are required". `mask` marks such arguments before parsing, so that
argparse takes them as values, and every argument's converter (`unmasked`) removes the mark.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")  # user and session ids (chalicelib/tokens/refresh.py)
_MASK = "\x00"  # never in an argument a shell can pass


def mask(argv: Iterable[str], options: Iterable[str]) -> list[str]:
    """`argv` with every id that begins with `-` marked, unless it is one of `options`."""
    known = set(options)
    return [
        _MASK + arg if arg.startswith("-") and ID_RE.fullmatch(arg) and arg not in known else arg
        for arg in argv
    ]


# A TypeVar, not `def unmasked[T]`: the repository's tools parse it with Python 3.11 too.
def unmasked(convert: Callable[[str], T]) -> Callable[[str], T]:  # noqa: UP047
    """An argparse `type` that converts the argument as given (its mark removed)."""

    def converter(value: str) -> T:
        return convert(value.removeprefix(_MASK))

    converter.__name__ = getattr(convert, "__name__", "converter")
    return converter


def wxauth_id(kind: str) -> Callable[[str], str]:
    """An argparse `type` for a user or session id (`kind` names it in the error)."""

    def check(value: str) -> str:
        if not ID_RE.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{kind} must be 22 base64url characters")
        return value

    return unmasked(check)


USER_ID = wxauth_id("USER_ID")
SESSION_ID = wxauth_id("SESSION_ID")


def option_strings(top: argparse.ArgumentParser) -> set[str]:
    """Every option string of `top` and its subcommands' parsers (`-h`, `--reason`, ...)."""
    found: set[str] = set()
    parsers = [top]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return found
