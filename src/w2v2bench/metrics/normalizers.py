"""Text normalisers: the named ones (none, basic, whisper) and the guarded `module:function` loader."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
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
    if CODE_NORMALIZER.fullmatch(key):
        if not allow_code:
            raise ValueError(
                f"normalizer={name!r} is code (module:function): only `python -m w2v2bench.score` runs one, given on "
                "its command line (never a run, never one named by a file)"
            )
        top = key.split(".", 1)[0].split(":", 1)[0]
        if top in STANDARD_LIBRARY:
            raise ValueError(
                f"normalizer={name!r}: {top} is in Python's standard library, which is refused (some of its functions "
                "run their text as a command or as code)"
            )
        return _code_normalizer(key)
    raise ValueError(f"normalizer={name!r}: expected one of {sorted(NORMALIZERS)}, null, or module:function")


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
