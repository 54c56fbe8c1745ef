"""Load a pickled torch checkpoint through an allow-list, with fairseq classes as inert placeholders.

A fairseq checkpoint is a pickle, and unpickling runs whatever callables the file names. This module is a
``pickle_module`` for ``torch.load``: it lets through tensors, storages, plain containers,
``argparse.Namespace``, omegaconf configs and numpy scalars; it turns every ``fairseq.*`` global into a
placeholder class that only records its arguments (so fairseq need not, and is never, imported); and it
refuses anything else before it is imported or called.
"""

from __future__ import annotations

import _compat_pickle
import contextvars
import importlib
import io
import pickle
import sys
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch

__all__ = [
    "FairseqPlaceholder",
    "LoadedCheckpoint",
    "RefusedGlobal",
    "UnreadableCheckpoint",
    "Unpickler",
    "load",
    "load_checkpoint",
    "loads",
    "resolve_global",
]

PLACEHOLDER_PACKAGES = ("fairseq",)

_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex")]
    + [("builtins", name) for name in ("str", "bytes", "bytearray", "bool", "slice", "range", "object")]
    + [
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "Counter"),
        ("_codecs", "encode"),  # bytes under pickle protocol 2
        ("copyreg", "_reconstructor"),  # objects under pickle protocols 0 and 1
        ("argparse", "Namespace"),
        ("typing", "Any"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("omegaconf.dictconfig", "DictConfig"),
        ("omegaconf.listconfig", "ListConfig"),
        ("omegaconf.base", "ContainerMetadata"),
        ("omegaconf.base", "Metadata"),
        ("omegaconf.base", "UnionNode"),
    ]
    + [
        ("omegaconf.nodes", name)
        for name in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "EnumNode")
        + ("BytesNode", "PathNode")
    ]
    + [
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("scalar", "_reconstruct")
    ]
    + [("numpy", "dtype"), ("numpy", "ndarray")]
)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; it was neither imported nor called."""

    def __init__(self, module: str, name: str, path: str | Path | None = None) -> None:
        self.module, self.name, self.path = module, name, path
        where = f"{path}: " if path is not None else ""
        super().__init__(
            f"{where}refused to load global {module}.{name}: a checkpoint may only contain tensors, "
            "storages, plain containers, argparse.Namespace, omegaconf configs, numpy scalars and "
            "fairseq.* objects (loaded as inert placeholders); this global was neither imported nor run"
        )


class UnreadableCheckpoint(ValueError):
    """The file is not a torch.save pickle (or is truncated, or is a TorchScript archive)."""


class FairseqPlaceholder:
    """Inert stand-in for a fairseq class or function: keeps the arguments and state it was given."""

    fairseq_name: ClassVar[str] = "fairseq"

    def __new__(cls, *args: Any, **kwargs: Any) -> FairseqPlaceholder:
        self = object.__new__(cls)
        self.placeholder_args = args
        self.placeholder_kwargs = kwargs
        self.placeholder_state = None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # everything was kept by __new__; a real constructor is never run

    def __setstate__(self, state: Any) -> None:
        self.placeholder_state = state

    def __repr__(self) -> str:
        return f"<placeholder for {self.fairseq_name} args={self.placeholder_args!r}>"


_seen_placeholders: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("seen_placeholders", default=None)


@cache
def _placeholder_class(qualified_name: str) -> type[FairseqPlaceholder]:
    short = qualified_name.rsplit(".", 1)[-1]
    return type(short, (FairseqPlaceholder,), {"fairseq_name": qualified_name, "__module__": __name__})


@cache
def _torch_dtype_names() -> frozenset[str]:
    return frozenset(name for name in dir(torch) if isinstance(getattr(torch, name), torch.dtype))


def _is_placeholder_module(module: str) -> bool:
    return any(module == pkg or module.startswith(pkg + ".") for pkg in PLACEHOLDER_PACKAGES)


def resolve_global(module: str, name: str) -> Any:
    """Return what the pickle may use for ``module.name``, or raise RefusedGlobal."""
    if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names written by pickle protocols < 3
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    if _is_placeholder_module(module):
        qualified = f"{module}.{name}"
        seen = _seen_placeholders.get()
        if seen is not None:
            seen.add(qualified)
        return _placeholder_class(qualified)
    if (module, name) in _ALLOWED_GLOBALS or (module == "torch" and name in _torch_dtype_names()):
        return getattr(importlib.import_module(module), name)
    raise RefusedGlobal(module, name)


class Unpickler(pickle.Unpickler):
    """A pickle.Unpickler whose globals come from the allow-list (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)


def load(file: BinaryIO, **kwargs: Any) -> Any:
    """Unpickle one object from ``file`` through the allow-list (the ``pickle.load`` of this module)."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    """Unpickle one object from ``data`` through the allow-list."""
    return load(io.BytesIO(data), **kwargs)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's content and the fairseq globals that were replaced by placeholders."""

    content: Any
    placeholders: tuple[str, ...]


@contextmanager
def _recording_placeholders() -> Iterator[set[str]]:
    seen: set[str] = set()
    token = _seen_placeholders.set(seen)
    try:
        yield seen
    finally:
        _seen_placeholders.reset(token)


def _refuse_torchscript(path: Path) -> None:
    # torch.load hands a TorchScript archive to torch.jit.load, which never sees our unpickler
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in archive.namelist()):
                raise UnreadableCheckpoint(f"{path}: is a TorchScript archive, expected a torch.save pickle")


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """torch.load ``path`` onto the CPU through the allow-list; both zip and legacy files are accepted."""
    path = Path(path)
    _refuse_torchscript(path)
    with _recording_placeholders() as seen, warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*TorchScript archive.*")
        try:
            content = torch.load(
                path, map_location="cpu", pickle_module=sys.modules[__name__], weights_only=False, mmap=False
            )
        except RefusedGlobal as refused:
            raise RefusedGlobal(refused.module, refused.name, path) from None
        except (RuntimeError, EOFError, pickle.UnpicklingError, UserWarning) as err:
            raise UnreadableCheckpoint(f"{path}: cannot be read as a torch checkpoint ({err})") from err
    return LoadedCheckpoint(content=content, placeholders=tuple(sorted(seen)))
