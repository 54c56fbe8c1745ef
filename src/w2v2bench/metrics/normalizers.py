"""Text normalisers: the named ones (none, basic, whisper) and code ones, by allow-list only.

A code normaliser (`module:function`) runs only if it is declared: an entry point of the group
`w2v2bench.normalizers` (an installed package's own declaration; this package declares `leaderboard`, the Open ASR
Leaderboard's `normalizer.data_utils:normalizer`), or a line of the user's own allow-list file
($W2V2BENCH_NORMALIZERS, default ~/.config/w2v2bench/normalizers.txt: `name = module:function` or
`module:function`). Naming an installed function on the command line is not enough (`yaml:unsafe_load` or
`sympy:sympify` would run each reference text as code), and a run's or a file's value never runs at all.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _basic(text: str) -> str:
    # upper-case, keep letters, digits and apostrophes, collapse whitespace
    return " ".join(re.sub(r"[^A-Z0-9' ]+", " ", text.upper()).split())


@functools.cache
def _whisper_normalizer() -> Callable[[str], str]:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as err:
        raise ValueError(
            "normalizer='whisper' needs the package whisper-normalizer (pip install whisper-normalizer)"
        ) from err
    return EnglishTextNormalizer()


def _whisper(text: str) -> str:
    # OpenAI Whisper's English normaliser, as the Open ASR Leaderboard applies it
    return _whisper_normalizer()(text)


NORMALIZERS: dict[str, Callable[[str], str]] = {"none": lambda text: text, "basic": _basic, "whisper": _whisper}


# `package.module:function` (the function may be an attribute path: `module:instance.method`)
CODE_NORMALIZER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


# the standard library holds functions that run their text as a command or as code (os.system, timeit.timeit,
# pdb.run, ...): a normaliser is never one of its functions, nor reached through one of its modules
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"builtins"}


def normalizer(name: str | None, allow_code: bool = False) -> Callable[[str], str]:
    """The normaliser called `name`; with `allow_code` (a command line's own value, never a file's) also a
    `module:function` importable from the Python path, such as the Open ASR Leaderboard's
    `normalizer.data_utils:normalizer`."""
    key = name or "none"
    if key in NORMALIZERS:
        return NORMALIZERS[key]
    try:
        allowed = allowed_code_normalizers()
    except ValueError:
        if allow_code:
            raise
        allowed = {}  # only to name a run's code normaliser as code: a bad list line matters where one runs
    if CODE_NORMALIZER.fullmatch(key) or key in allowed:
        if not allow_code:
            raise ValueError(
                f"normalizer={name!r} is code (module:function): only `python -m w2v2bench.score` runs one, given on "
                "its command line (never a run, never one named by a file)"
            )
        if key in allowed:
            key = allowed[key]
        elif key not in allowed.values():
            shown = ", ".join(f"{n} = {v}" for n, v in sorted(allowed.items())) or "none"
            raise ValueError(
                f"normalizer={name!r} is not on the allow-list of code normalisers (allowed: {shown}): add the line "
                f"`{key}` to {allow_list_file()} if you trust it, or declare it in an installed package's "
                f"`{ENTRY_POINTS}` entry points"
            )
        top = key.split(".", 1)[0].split(":", 1)[0]
        if top in STANDARD_LIBRARY:
            raise ValueError(
                f"normalizer={name!r}: {top} is in Python's standard library, which is refused (some of its functions "
                "run their text as a command or as code)"
            )
        return _code_normalizer(key)
    raise ValueError(f"normalizer={name!r}: expected one of {sorted(NORMALIZERS)}, null, or module:function")


ENTRY_POINTS = "w2v2bench.normalizers"
ALLOW_LIST_ENV = "W2V2BENCH_NORMALIZERS"


def allow_list_file() -> Path:
    """The user's own allow-list of code normalisers: $W2V2BENCH_NORMALIZERS, else
    ~/.config/w2v2bench/normalizers.txt."""
    return Path(os.environ.get(ALLOW_LIST_ENV) or "~/.config/w2v2bench/normalizers.txt").expanduser()


def allowed_code_normalizers() -> dict[str, str]:
    """name -> `module:function`: the entry points of group w2v2bench.normalizers, then the user's allow-list file
    (`name = module:function` or `module:function` per line, `#` comments); a malformed line is one error."""
    from importlib.metadata import entry_points

    allowed = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS) if CODE_NORMALIZER.fullmatch(ep.value)}
    path = allow_list_file()
    if not path.is_file():
        return allowed
    from ..files import read_text

    for number, line in enumerate(read_text(path, 2**20).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, spec = (part.strip() for part in line.rpartition("=")) if "=" in line else (line, "", line)
        if not (CODE_NORMALIZER.fullmatch(spec) and name and name not in NORMALIZERS):
            raise ValueError(f"{path}:{number}: expected `name = module:function` or `module:function`, found {line!r}")
        allowed[name] = spec
    return allowed


def _code_normalizer(spec: str) -> Callable[[str], str]:
    import importlib
    import inspect

    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as err:  # whatever the module's own import raises
        raise ValueError(f"normalizer={spec!r}: cannot import {module_name} ({type(err).__name__}: {err})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"normalizer={spec!r}: {module_name} has no attribute {attribute}")
        target = getattr(target, part)
        if inspect.ismodule(target):  # `pkg:os.system` would walk into another module
            raise ValueError(f"normalizer={spec!r}: {part} is a module; name the function in its own module")
    if not callable(target):
        raise ValueError(f"normalizer={spec!r}: {attribute} is a {type(target).__name__}, not a function")
    home = str(getattr(target, "__module__", None) or getattr(type(target), "__module__", "")).split(".")[0]
    if home in STANDARD_LIBRARY:  # `mymod:system` after `from os import system`
        raise ValueError(f"normalizer={spec!r}: {attribute} comes from {home}, in Python's standard library: refused")

    def apply(text: str) -> str:
        try:
            out = target(text)
        except (Exception, SystemExit) as err:
            raise ValueError(f"normalizer={spec!r} failed on {text[:60]!r}: {type(err).__name__}: {err}") from None
        if not isinstance(out, str):
            raise ValueError(f"normalizer={spec!r} returned a {type(out).__name__} for {text[:60]!r}, not a str")
        return out

    return apply
