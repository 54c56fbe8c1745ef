"""Load a fairseq checkpoint with torch's weights-only unpickler: nothing in the file can run, write or hang.

Four layers (docs/faults.md): only a regular file is opened, the zip form stored and within the file's
size, the tar form refused; every global the pickles name is scanned (`pickletools`) against a short
allow-list before anything is built, `fairseq.*` ones mapped to inert placeholders and numpy's to checked
stand-ins; `torch.load(weights_only=True)` with exactly those globals does the unpickling (no BUILD on a
class, storage persistent ids only); and the result is walked once within budgets (objects, depth, cycles,
tensor bytes against the file's size). Every failure is one line naming the file and the cause.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import io
import math
import pickle
import pickletools
import re
import tarfile
import warnings
import zipfile
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch

from ..files import open_regular

__all__ = [
    "MAX_DEPTH",
    "MAX_OBJECTS",
    "FairseqPlaceholder",
    "LoadedCheckpoint",
    "RefusedGlobal",
    "UnreadableCheckpoint",
    "check_structure",
    "global_kind",
    "load_checkpoint",
]

PLACEHOLDER_PACKAGES = ("fairseq",)
MAX_OBJECTS = 500_000  # objects reached by a walk of the loaded checkpoint (shared ones counted each time)
MAX_DEPTH = 64  # containers inside containers; fairseq's own configs nest about 12 deep

# What a fairseq wav2vec 2.0 checkpoint is made of. torch's weights-only unpickler allows more by default
# (bytearray(n) allocates n bytes from a few bytes of pickle; quantized, sparse and subclass tensors); the
# scan refuses what is not listed here.
_TORCH = [
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch.nn.parameter.Parameter",
    "torch.Size",
    "torch.device",
    "_codecs.encode",  # how pickle protocol 2 writes bytes
    "builtins.set",
]


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; it was neither imported nor called."""

    def __init__(self, module: str, name: str, path: str | Path | None = None) -> None:
        self.module, self.name, self.path = module, name, path
        where = f"{path}: " if path is not None else ""
        super().__init__(
            f"{where}refused to load global {module}.{name}: a checkpoint may only contain tensors, "
            "plain containers, argparse.Namespace, omegaconf configs, numpy scalars and arrays, and "
            "fairseq.* objects (loaded as inert placeholders); this global was neither imported nor run"
        )


class UnreadableCheckpoint(ValueError):
    """The file is not a checkpoint this loader reads (or it is malformed, or breaks a budget)."""


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
        return f"<placeholder for {self.fairseq_name}>"


@cache
def _placeholder_class(qualified_name: str) -> type[FairseqPlaceholder]:
    short = qualified_name.rsplit(".", 1)[-1]
    return type(short, (FairseqPlaceholder,), {"fairseq_name": qualified_name, "__module__": __name__})


# numpy's pickles call numpy.dtype(spec, align, copy) and BUILD it with a state tuple, and build arrays as
# _reconstruct(ndarray, (0,), b'b') followed by BUILD with (version, shape, dtype, fortran, raw data). numpy's
# own code trusts those arguments (an object array's state of a billion elements crashes the process), so the
# names map to the stand-ins below: they accept what numpy writes, check sizes against the data the file
# holds, and build the value with numpy's ordinary constructors.
_DTYPE_SPEC = re.compile(r"[<>|=]?[?bBhHiIlLqQefdgFDGSUVOMmc]\d{0,7}")
MAX_NUMPY_ITEMSIZE = 2**20


class NumpyDtype:
    """Stand-in for numpy.dtype while unpickling: a plain dtype (no fields, no subarray) from its spec."""

    def __new__(cls, spec: Any, align: Any = False, copy: Any = True) -> NumpyDtype:
        if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec):
            raise pickle.UnpicklingError(f"numpy dtype {spec!r}: only plain dtypes (such as 'f8', 'O8') are read")
        self = object.__new__(cls)
        self.dtype = np.dtype(spec)
        if self.dtype.itemsize > MAX_NUMPY_ITEMSIZE:
            raise pickle.UnpicklingError(f"numpy dtype {spec!r}: items of {self.dtype.itemsize} bytes")
        return self

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, item size, alignment, flags), as numpy writes it
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[2:5] == (None, None, None)):
            raise pickle.UnpicklingError("numpy dtype state: only plain dtypes (no fields, no subarray) are read")
        if state[1] in ("<", ">") and self.dtype.byteorder not in ("|", state[1]):
            self.dtype = self.dtype.newbyteorder(state[1])


class NumpyArrayType:
    """Stands for the class numpy.ndarray as an argument; calling it is refused (it would allocate)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> NumpyArrayType:
        raise pickle.UnpicklingError("numpy.ndarray(...) called directly: numpy pickles arrays with _reconstruct")


class NumpyArray:
    """An array as numpy pickles it; `array` holds it once BUILD gave the data (sizes checked first)."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], NumpyDtype)):
            raise pickle.UnpicklingError("numpy array state: expected (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, data = state
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
            raise pickle.UnpicklingError(f"numpy array shape {shape!r}: expected non-negative ints")
        n, dtype = math.prod(shape), dtype.dtype
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != n:
                raise pickle.UnpicklingError(f"numpy object array of {n} items with {type(data).__name__} data")
            array = np.empty(len(data), dtype=object)
            array[:] = data
        else:
            if not isinstance(data, bytes) or len(data) != n * dtype.itemsize:
                raise pickle.UnpicklingError(f"numpy array of {n} x {dtype.itemsize} bytes with other data")
            array = np.frombuffer(data, dtype=dtype).copy()
        self.array = array.reshape(shape, order=order)


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> NumpyArray:
    if subtype is not NumpyArrayType or shape != (0,):
        raise pickle.UnpicklingError(f"numpy _reconstruct({subtype!r}, {shape!r}): numpy pickles empty arrays only")
    return NumpyArray()


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, NumpyDtype):
        raise pickle.UnpicklingError("numpy scalar without a dtype")
    if dtype.dtype.hasobject:
        return data
    if not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar of {dtype.dtype} with {type(data).__name__} data")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _our_globals() -> dict[str, Any]:
    """Globals beyond torch's defaults, by the name the pickle uses."""
    from omegaconf import base, dictconfig, listconfig, nodes

    found: dict[str, Any] = {
        "argparse.Namespace": argparse.Namespace,
        "typing.Any": Any,
        "collections.defaultdict": defaultdict,
        "collections.Counter": Counter,
        "numpy.ndarray": NumpyArrayType,
        "numpy.dtype": NumpyDtype,
        "omegaconf.dictconfig.DictConfig": dictconfig.DictConfig,
        "omegaconf.listconfig.ListConfig": listconfig.ListConfig,
        **{f"omegaconf.base.{n}": getattr(base, n) for n in ("ContainerMetadata", "Metadata", "UnionNode")},
    }
    for name in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "EnumNode", "BytesNode"):
        found[f"omegaconf.nodes.{name}"] = getattr(nodes, name)
    # classes as values (omegaconf's ref_type / object_type), never as amplifiers: no bytes(n), no range
    for kind in (dict, list, tuple, int, float, str, bool, complex, frozenset, object):
        found[f"builtins.{kind.__name__}"] = kind
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[f"{module}.scalar"] = _numpy_scalar
        found[f"{module}._reconstruct"] = _numpy_reconstruct
    return found


# instances BUILD may fill: allowed by torch as values only (no pickle can name them: the scan refuses)
_BUILD_ONLY = [(NumpyArray, "w2v2bench.convert.safe_pickle.NumpyArray")]


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Python 2 spellings (pickle protocol 2 writes `__builtin__`), mapped as every unpickler maps them."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _is_placeholder(module: str) -> bool:
    return any(module == pkg or module.startswith(pkg + ".") for pkg in PLACEHOLDER_PACKAGES)


@cache
def _torch_names() -> frozenset[str]:
    dtypes = [f"torch.{n}" for n in dir(torch) if isinstance(getattr(torch, n), torch.dtype)]
    storages = [f"torch.{n}" for n in dir(torch) if n.endswith("Storage") and isinstance(getattr(torch, n), type)]
    return frozenset(_TORCH + dtypes + storages)


def global_kind(module: str, name: str) -> str:
    """'torch' (torch's own allow-list), 'ours', 'placeholder', or RefusedGlobal."""
    module, name = _normalise(module, name)
    if _is_placeholder(module):
        return "placeholder"
    full = f"{module}.{name}"
    if full in _torch_names():
        return "torch"
    if full in _our_globals():
        return "ours"
    raise RefusedGlobal(module, name)


# ----------------------------------------------------------------------------------------------------------
# Layer 1 and 2: the file, and the globals its pickles name


def _scan_pickle(stream: BinaryIO) -> set[tuple[str, str]]:
    """The (module, name) of every GLOBAL in one pickle, read up to its STOP; nothing is built."""
    found = set()
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name == "GLOBAL":
            module, name = arg.split(" ", 1)
            found.add(_normalise(module, name))
        elif opcode.name in ("STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"):
            # torch.save writes protocol 2 with plain GLOBALs; torch's weights-only unpickler refuses these too
            raise pickle.UnpicklingError(f"pickle opcode {opcode.name} (names a global indirectly)")
    return found


def _scan_zip(handle: BinaryIO, size: int) -> set[tuple[str, str]]:
    with zipfile.ZipFile(handle) as archive:
        members = archive.infolist()
    names = [m.filename for m in members]
    if any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in names):
        raise UnreadableCheckpoint("is a TorchScript archive, expected a torch.save checkpoint")
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise UnreadableCheckpoint(f"zip members are compressed ({packed[:3]}); torch.save stores them as is")
    if sum(m.file_size for m in members) > size:
        raise UnreadableCheckpoint("zip members add up to more bytes than the file holds")
    if len({n.lower() for n in names}) != len(names):
        raise UnreadableCheckpoint("zip members whose names differ only in case (torch's reader would pick one)")
    # the pickle torch will unpickle, read by torch's own zip reader (the same member, byte for byte)
    handle.seek(0)
    reader = torch._C.PyTorchFileReader(handle)
    if sorted(reader.get_all_records()) != sorted(n.split("/", 1)[-1] for n in names):
        raise UnreadableCheckpoint("torch's zip reader and Python's see different members")
    return _scan_pickle(io.BytesIO(reader.get_record("data.pkl")))


def _scan_legacy(handle: BinaryIO) -> set[tuple[str, str]]:
    # torch < 1.6: magic number, protocol, sys info, the object, its storage keys; then the raw storages
    for expected in (torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION):
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(handle)]
        values = [arg for name, arg in ops if name not in ("PROTO", "STOP")]
        if values != [expected] or len(ops) > 3:
            raise UnreadableCheckpoint("not a torch.save file (neither a zip archive nor torch's magic number)")
    found: set[tuple[str, str]] = set()
    for _ in range(3):
        found |= _scan_pickle(handle)
    return found


def _scan(handle: BinaryIO, size: int) -> set[tuple[str, str]]:
    # the zip test torch.load itself makes (the first bytes), so both read the file the same way
    if handle.read(4) == b"PK\x03\x04":
        handle.seek(0)
        return _scan_zip(handle, size)
    handle.seek(0)
    if tarfile.is_tarfile(handle):
        raise UnreadableCheckpoint(
            "is in the tar format of torch < 0.4 (2017), which this converter does not read; "
            "load and re-save it with a current torch in an environment you trust"
        )
    handle.seek(0)
    return _scan_legacy(handle)


# ----------------------------------------------------------------------------------------------------------
# Layer 4: the loaded object


def _children(obj: Any) -> list[Any]:
    from omegaconf import Node

    kind = type(obj)
    if kind in (dict, OrderedDict, Counter, defaultdict):
        return [*obj.keys(), *obj.values()]
    if kind in (list, tuple, set, frozenset):
        return list(obj)
    if isinstance(obj, type) or isinstance(obj, torch.Tensor | np.ndarray | np.generic):
        return []
    attributes = getattr(obj, "__dict__", None)
    if not isinstance(attributes, dict):
        return []
    if isinstance(obj, Node):  # omegaconf nodes point back at their parent: a downward walk leaves that out
        return [v for k, v in attributes.items() if k != "_parent"]
    return list(attributes.values())


def check_structure(obj: Any, max_objects: int = MAX_OBJECTS, max_depth: int = MAX_DEPTH) -> int:
    """Raise UnreadableCheckpoint unless walking `obj` (as every later reader walks it: shared objects
    each time they are reached) stays within the budgets and meets no cycle; returns the bytes its tensors
    span (each tensor object once, as numel x item size: a tensor that repeats one stored value across a
    large shape spans its whole shape)."""
    visits, tensor_bytes, seen_tensors = 0, 0, set()
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(obj, 0, False)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        visits += 1
        if visits > max_objects:
            raise UnreadableCheckpoint(
                f"holds more than {max_objects:,} objects when walked (shared references count each time)"
            )
        if isinstance(node, torch.Tensor) and id(node) not in seen_tensors:
            seen_tensors.add(id(node))
            tensor_bytes += node.numel() * node.element_size()
        children = _children(node)
        if not children:
            continue
        if id(node) in on_path:
            raise UnreadableCheckpoint(f"a {type(node).__name__} contains itself (a reference cycle)")
        if depth >= max_depth:
            raise UnreadableCheckpoint(f"containers nest more than {max_depth} deep")
        on_path.add(id(node))
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children)
    return tensor_bytes


# ----------------------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's content and the fairseq globals that were replaced by placeholders."""

    content: Any
    placeholders: tuple[str, ...]


def _short(err: BaseException) -> str:
    """One line for an error from torch or omegaconf (torch's weights-only messages run to a paragraph)."""
    text = str(err)
    if "WeightsUnpickler error: " in text:
        text = text.split("WeightsUnpickler error: ", 1)[1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first[:300]}"


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """torch.load `path` onto the CPU, weights only, through the allow-list (zip and torch < 1.6 files)."""
    path = Path(path)
    try:
        with open_regular(path) as handle:
            size = handle.seek(0, io.SEEK_END)
            handle.seek(0)
            names = _scan(handle, size)
            kinds = {(m, n): global_kind(m, n) for m, n in sorted(names)}
            ours = _our_globals()
            extra = [
                (_placeholder_class(f"{m}.{n}"), f"{m}.{n}")
                if kind == "placeholder"
                else (ours[f"{m}.{n}"], f"{m}.{n}")
                for (m, n), kind in kinds.items()
                if kind != "torch"
            ] + _BUILD_ONLY
            handle.seek(0)
            with torch.serialization.safe_globals(extra), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                content = torch.load(handle, map_location="cpu", weights_only=True, mmap=False)
        tensor_bytes = check_structure(content)
        if tensor_bytes > size:
            raise UnreadableCheckpoint(f"its tensors claim {tensor_bytes} bytes, the file holds {size}")
    except RefusedGlobal as refused:
        raise RefusedGlobal(refused.module, refused.name, path) from None
    except UnreadableCheckpoint as err:
        raise UnreadableCheckpoint(f"{path}: {err}") from None
    except OSError as err:
        raise OSError(f"{err}" if str(path) in str(err) else f"{path}: {err.strerror or err}") from None
    except Exception as err:  # whatever a malformed file makes torch, numpy or omegaconf raise
        raise UnreadableCheckpoint(f"{path}: cannot be read as a torch checkpoint ({_short(err)})") from None
    placeholders = sorted(f"{m}.{n}" for (m, n), kind in kinds.items() if kind == "placeholder")
    return LoadedCheckpoint(content=content, placeholders=tuple(placeholders))
