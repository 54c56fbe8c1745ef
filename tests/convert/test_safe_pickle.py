"""Hostile checkpoints: each is built here (never shipped), converted in a watched subprocess, and must end in
one line, exit 1, within seconds, with nothing executed and no file written anywhere."""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers.fairseq import fairseq_checkpoint, fairseq_state, save, tiny_model, write_dict
from w2v2bench.convert.safe_pickle import MAX_DEPTH, UnreadableCheckpoint, check_structure

# ---- a small pickle assembler (protocol 2 opcodes, the ones torch.save writes) ----------------------------

PROTO, STOP, NONE, TRUE, MARK = b"\x80\x02", b".", b"N", b"\x88", b"("
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE = b"}", b"]", b")"
TUPLE, TUPLE1, TUPLE2 = b"t", b"\x85", b"\x86"
SETITEM, SETITEMS, APPEND, REDUCE, BUILD, NEWOBJ, BINPERSID = b"s", b"u", b"a", b"R", b"b", b"\x81", b"Q"


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def num(value: int) -> bytes:
    return b"J" + struct.pack("<i", value) if -(2**31) <= value < 2**31 else pickle.dumps(value, 2)[2:-1]


def put(slot: int) -> bytes:
    return b"q" + bytes([slot])


def get(slot: int) -> bytes:
    return b"h" + bytes([slot])


def checkpoint_dict(value: bytes) -> bytes:
    """{'model': {}, 'args': <value>} around the hostile part."""
    return PROTO + EMPTY_DICT + MARK + text("model") + EMPTY_DICT + text("args") + value + SETITEMS + STOP


def legacy_file(main: bytes) -> bytes:
    """torch < 1.6's format: magic number, protocol, sys info, the object, its storage keys."""
    head = b"".join(pickle.dumps(v, 2) for v in (torch.serialization.MAGIC_NUMBER, 1001, {}))
    return head + main + pickle.dumps([], 2)


def zip_file(main: bytes) -> bytes:
    """torch's zip format with `main` as data.pkl (the other records as torch.save writes them)."""
    buffer = io.BytesIO()
    torch.save({}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member in source.infolist():
            data = main if member.filename.endswith("/data.pkl") else source.read(member)
            archive.writestr(member.filename, data, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


# BUILD with a (None, slotstate) state on the class argparse.Namespace itself, then torch's legacy 'module'
# persistent id: with a plain unpickler this writes `<marker>.patch` (torch's _check_container_source)
def _patch_writer(marker: Path) -> bytes:
    state = NONE + EMPTY_DICT + MARK + text("dump_patches") + TRUE + text("__name__") + text(str(marker)) + SETITEMS
    build_on_class = glob("argparse", "Namespace") + put(0) + state + TUPLE2 + BUILD
    module_id = MARK + text("module") + get(0) + text("class Namespace: pass") + text("original") + TUPLE
    return checkpoint_dict(build_on_class + module_id + BINPERSID)


def _shared_lists(depth: int) -> bytes:
    # each list holds the previous one twice: 2**depth objects to a walk that does not share, 1 KB on disk
    nested: list = []
    for _ in range(depth):
        nested = [nested, nested]
    return pickle.dumps({"model": {}, "args": nested}, protocol=2)


def _deep_lists(depth: int) -> bytes:
    return checkpoint_dict(EMPTY_LIST * depth + APPEND * (depth - 1))


def _self_referencing_args() -> bytes:
    args = glob("argparse", "Namespace") + EMPTY_TUPLE + NEWOBJ + put(0)
    return checkpoint_dict(args + EMPTY_DICT + text("w2v_args") + get(0) + SETITEM + BUILD)


def _tar_with_fifo(path: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        fifo = tarfile.TarInfo("storages")
        fifo.type = tarfile.FIFOTYPE
        archive.addfile(fifo)
        for name in ("tensors", "pickle"):
            archive.addfile(tarfile.TarInfo(name), io.BytesIO(b""))


def _compressed_zip(path: Path) -> None:
    source = zipfile.ZipFile(io.BytesIO(zip_file(checkpoint_dict(NONE))))
    with zipfile.ZipFile(path, "w") as archive:
        for member in source.infolist():
            archive.writestr(member.filename, source.read(member), compress_type=zipfile.ZIP_DEFLATED)


def _good_checkpoint(path: Path, mutate: Callable[[dict], None]) -> None:
    checkpoint = fairseq_checkpoint(tiny_model("group"), "args", normalize=False)
    mutate(checkpoint)
    save(checkpoint, path)


def _huge_args(ckpt: dict) -> None:
    ckpt["args"].w2v_args.encoder_embed_dim = 2**20  # 4 TB of weights the 200 KB of tensors do not fill


def _huge_layers(ckpt: dict) -> None:
    ckpt["args"].w2v_args.encoder_layers = 10**9


def _omegaconf_without_metadata() -> bytes:
    config = glob("omegaconf.dictconfig", "DictConfig") + EMPTY_TUPLE + NEWOBJ
    return checkpoint_dict(config + EMPTY_DICT + text("_content") + EMPTY_DICT + SETITEM + BUILD)


def _stride_zero(ckpt: dict) -> None:
    # every tensor one stored zero expanded to a 1024-wide, 8-layer model: 20 KB on disk, 700 MB as weights
    w2v = ckpt["args"].w2v_args
    w2v.encoder_embed_dim, w2v.encoder_ffn_embed_dim, w2v.encoder_layers = 1024, 8192, 8
    config = tiny_model("group").config
    config.hidden_size, config.intermediate_size, config.num_hidden_layers = 1024, 8192, 8
    with torch.device("meta"):
        big = type(tiny_model("group"))(config)
    one = torch.zeros(1)
    ckpt["model"] = {k: one.expand(*v.shape) for k, v in fairseq_state(big, True).items()}


def _magic_with_bytearray() -> bytes:
    # the first pickle of a legacy file is torch's magic number: here bytearray(1e9) comes first
    magic = PROTO + glob("__builtin__", "bytearray") + num(10**9) + TUPLE1 + REDUCE + put(0)
    magic += pickle.dumps(torch.serialization.MAGIC_NUMBER, 2)[2:-1] + STOP
    return magic + legacy_file(checkpoint_dict(NONE))[len(pickle.dumps(torch.serialization.MAGIC_NUMBER, 2)) :]


def _zip_with_two_cases(path: Path) -> None:
    # `data.pkl` (harmless) and `DATA.PKL` (bytearray(1e9)): torch's reader looks names up ignoring case
    hostile = checkpoint_dict(glob("__builtin__", "bytearray") + num(10**9) + TUPLE1 + REDUCE)
    source = zipfile.ZipFile(io.BytesIO(zip_file(checkpoint_dict(NONE))))
    with zipfile.ZipFile(path, "w") as archive:
        for member in source.infolist():
            archive.writestr(member.filename, source.read(member))
            if member.filename.endswith("/data.pkl"):
                archive.writestr(member.filename.replace("data.pkl", "DATA.PKL"), hostile)


def _numpy_object_array(n: int) -> bytes:
    # numpy's own pickle of an object array, with a shape of n elements and one item of data
    dtype = glob("numpy", "dtype") + text("O8") + NONE + TRUE + b"\x87" + REDUCE
    state = MARK + num(1) + num(n) + TUPLE1 + dtype + b"\x89" + EMPTY_LIST + NONE + APPEND + TUPLE
    array = glob("numpy.core.multiarray", "_reconstruct") + MARK + glob("numpy", "ndarray") + num(0) + TUPLE1
    array += text("b") + TUPLE + REDUCE
    return checkpoint_dict(array + state + BUILD)


def _namespace_with_parent(value: bytes) -> bytes:
    # `_parent` is omegaconf's back-link; on a Namespace it is an ordinary attribute and is walked
    args = glob("argparse", "Namespace") + EMPTY_TUPLE + NEWOBJ + put(0)
    return checkpoint_dict(args + EMPTY_DICT + text("_parent") + value + SETITEM + BUILD)


def w(data: bytes | Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
    """A writer of a hostile file from bytes (or from a function of the marker path)."""
    return lambda path, marker: path.write_bytes(data(marker) if callable(data) else data)


STORAGE = glob("torch", "FloatStorage")
HOSTILE: list[tuple[str, Callable[[Path, Path], None], str]] = [
    # what, writer(path, marker), fragment of the one-line error
    ("BUILD on a class + 'module' id, legacy", w(lambda m: legacy_file(_patch_writer(m))), "cannot be read"),
    ("BUILD on a class + 'module' id, zip", w(lambda m: zip_file(_patch_writer(m))), "cannot be read"),
    ("'module' persistent id alone, legacy",
     w(legacy_file(checkpoint_dict(MARK + text("module") + glob("argparse", "Namespace") + text("a") + text("b")
                                   + TUPLE + BINPERSID))), "persistent_load of storage"),
    ("tar format with a FIFO member", lambda p, m: _tar_with_fifo(p), "tar format"),
    ("the checkpoint is a FIFO", lambda p, m: os.mkfifo(p), "is a FIFO"),
    ("the checkpoint is a folder", lambda p, m: p.mkdir(), "is a folder"),
    ("60 levels of shared lists (1 KB)", w(legacy_file(_shared_lists(60))), "objects when walked"),
    ("lists nested 100,000 deep", w(legacy_file(_deep_lists(100_000))), f"nest more than {MAX_DEPTH} deep"),
    ("args that contain themselves", w(legacy_file(_self_referencing_args())), "contains itself"),
    ("unknown persistent id type", w(legacy_file(checkpoint_dict(MARK + text("thing") + num(1) + TUPLE + BINPERSID))),
     "persistent_load of storage"),
    ("an int as storage type", w(zip_file(checkpoint_dict(MARK + text("storage") + num(5) + text("0") + text("cpu")
                                                          + num(4) + TUPLE + BINPERSID))), "cannot be read"),
    ("_rebuild_tensor_v2 with wrong arguments",
     w(zip_file(checkpoint_dict(glob("torch._utils", "_rebuild_tensor_v2") + MARK + num(1) + TUPLE + REDUCE))),
     "cannot be read"),
    ("DictConfig without _metadata", w(legacy_file(_omegaconf_without_metadata())), "cannot be read"),
    ("BUILD on a placeholder class",
     w(legacy_file(checkpoint_dict(glob("fairseq.models", "Model") + EMPTY_DICT + BUILD))), "cannot be read"),
    ("numpy _reconstruct of 16 TiB",
     w(legacy_file(checkpoint_dict(glob("numpy.core.multiarray", "_reconstruct") + MARK + glob("numpy", "ndarray")
                                   + num(2**44) + TUPLE1 + text("b") + TUPLE + REDUCE))),
     "empty arrays only"),
    ("bytes(10**13)", w(legacy_file(checkpoint_dict(glob("builtins", "bytes") + num(10**13) + TUPLE1 + REDUCE))),
     "refused to load global builtins.bytes"),
    ("bytearray(10**13)",
     w(legacy_file(checkpoint_dict(glob("__builtin__", "bytearray") + num(10**13) + TUPLE1 + REDUCE))),
     "refused to load global builtins.bytearray"),
    ("list(range(10**10))",
     w(legacy_file(checkpoint_dict(glob("__builtin__", "list") + glob("__builtin__", "xrange") + num(10**10)
                                   + TUPLE1 + REDUCE + TUPLE1 + REDUCE))), "refused to load global builtins.range"),
    ("a 2**40-element storage in a 200-byte file",
     w(legacy_file(checkpoint_dict(MARK + text("storage") + STORAGE + text("0") + text("cpu") + num(2**40) + NONE
                                   + TUPLE + BINPERSID))), "cannot be read"),
    ("compressed zip members (a zip bomb's shape)", lambda p, m: _compressed_zip(p), "compressed"),
    ("os.system by GLOBAL", w(legacy_file(checkpoint_dict(glob("os", "system") + text("touch x") + TUPLE1 + REDUCE))),
     "refused to load global os.system"),
    ("an architecture 2**20 wide", lambda p, m: _good_checkpoint(p, _huge_args), "tensor mapping failed"),
    ("a billion encoder layers", lambda p, m: _good_checkpoint(p, _huge_layers), "encoder_layers=1000000000"),
    ("tensors that repeat one value over a large shape", lambda p, m: _good_checkpoint(p, _stride_zero),
     "its tensors claim"),
    ("bytearray(1e9) before the magic number", w(_magic_with_bytearray()), "not a torch.save file"),
    ("data.pkl and DATA.PKL in one zip", lambda p, m: _zip_with_two_cases(p), "differ only in case"),
    ("numpy.ndarray((1e9,), 'O') called", w(legacy_file(checkpoint_dict(
        glob("numpy", "ndarray") + MARK + num(10**9) + TUPLE1 + glob("numpy", "dtype") + text("O8") + TUPLE1
        + REDUCE + TUPLE + REDUCE))), "numpy.ndarray(...) called directly"),
    ("a numpy object array's state of 1e8 elements", w(legacy_file(_numpy_object_array(10**8))),
     "object array of 100000000 items"),
    ("numpy dtype with fields", w(legacy_file(checkpoint_dict(glob("numpy", "dtype") + text("V8") + TUPLE1 + REDUCE
                                                             + MARK + num(3) + text("|") + NONE + TUPLE1 + NONE + NONE
                                                             + num(8) + num(1) + num(0) + TUPLE + BUILD))),
     "only plain dtypes"),
    ("Namespace._parent is itself", w(legacy_file(_namespace_with_parent(get(0)))), "contains itself"),
    ("Namespace._parent nested 2000 deep", w(legacy_file(_namespace_with_parent(EMPTY_LIST * 2000 + APPEND * 1999))),
     "nest more than"),
    ("not UTF-8 dictionary", lambda p, m: _good_checkpoint(p, lambda c: None), "not UTF-8"),
    ("dictionary is a FIFO", lambda p, m: _good_checkpoint(p, lambda c: None), "is a FIFO"),
]  # fmt: skip

# The conversions run in one subprocess that records, through Python's audit hooks, every file opened for
# writing, every file-system change, every process started and every fairseq import.
DRIVER = textwrap.dedent(
    """
    import json, os, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))  # a regression fails, not the machine
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    events = []

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if (mode and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE):
                events.append(["open for writing", str(path)])
        elif event == "os.mkdir" and os.path.abspath(args[0]) == os.getcwd():
            pass  # Hydra's run dir is `.`: it makes sure the current folder exists
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.symlink", "os.link",
                       "os.truncate", "os.chmod", "shutil.copyfile", "shutil.rmtree", "subprocess.Popen", "os.system",
                       "os.exec", "os.posix_spawn", "os.fork", "os.forkpty", "pickle.find_class"):
            events.append([event, repr(args)[:200]])
        elif event == "import" and str(args[0]).startswith("fairseq"):
            events.append([event, args[0]])

    from w2v2bench.cli import convert
    import torch._dynamo  # transformers imports it; its import makes torch's cache folder in /tmp, input or not
    from transformers import Wav2Vec2ForCTC
    sys.addaudithook(hook)
    report = []
    for checkpoint, dict_path, out in json.loads(sys.argv[1]):
        sys.argv = ["w2v2bench.convert", f"checkpoint={checkpoint}", f"dict={dict_path}", f"out={out}"]
        before, tic = len(events), time.monotonic()
        err_pipe = os.dup(2)
        r, wfd = os.pipe()
        os.dup2(wfd, 2)
        try:
            convert.main()
            status = 0
        except SystemExit as exit_:
            status = exit_.code
        except BaseException as err:
            status = f"raised {type(err).__name__}: {err}"
        finally:
            os.dup2(err_pipe, 2)
            os.close(wfd)
        stderr = os.read(r, 1 << 20).decode()
        os.close(r)
        report.append({"status": status, "stderr": stderr, "seconds": time.monotonic() - tic,
                       "events": events[before:]})
    print(json.dumps(report))
    """
)


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.slow
def test_hostile_checkpoints_end_in_one_line_and_write_nothing(tmp_path):
    cases, jobs = tmp_path / "cases", []
    cases.mkdir()
    for n, (what, writer, _) in enumerate(HOSTILE):
        path, marker = cases / f"{n}.pt", tmp_path / f"pwned-{n}"
        writer(path, marker)
        dict_path = write_dict(cases / f"{n}.dict.txt")
        if what == "not UTF-8 dictionary":
            dict_path.write_bytes("| 10\nÄ 5\n".encode("latin-1"))
        if what == "dictionary is a FIFO":
            dict_path.unlink()
            os.mkfifo(dict_path)
        jobs.append((str(path), str(dict_path), str(tmp_path / "out" / str(n))))
    good_out = tmp_path / "good-out"
    _good_checkpoint(cases / "good.pt", lambda c: None)
    jobs.append((str(cases / "good.pt"), str(write_dict(cases / "good.dict.txt")), str(good_out)))
    before = snapshot(tmp_path)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    *report, good = report
    for (what, _, fragment), (checkpoint, dict_path, _), result in zip(HOSTILE, jobs[:-1], report, strict=True):
        lines = result["stderr"].splitlines()
        assert result["status"] == 1, (what, result)
        assert len(lines) == 1 and lines[0].startswith("w2v2bench.convert: error: "), (what, result["stderr"])
        assert checkpoint in lines[0] or dict_path in lines[0], (what, lines[0])
        assert fragment in lines[0], (what, lines[0])
        assert result["seconds"] < 10, (what, result["seconds"])
        assert result["events"] == [], (what, result["events"])
    # the watch sees writes: a good conversion's all land inside its out=
    assert good["status"] == 0 and good["events"], good
    assert all(str(good_out) in detail for _, detail in good["events"]), good["events"]
    written = {str(good_out.relative_to(tmp_path))} | {str(p.relative_to(tmp_path)) for p in good_out.rglob("*")}
    assert snapshot(tmp_path) == before | written  # no marker, no .patch, no other out= folder, nothing else
    assert not any(tmp_path.glob("pwned*"))


def test_the_budget_walk_counts_shared_objects_each_time_and_finds_cycles():
    shared: list = []
    for _ in range(20):
        shared = [shared, shared]
    with pytest.raises(UnreadableCheckpoint, match="objects when walked"):
        check_structure(shared, max_objects=100_000)
    assert check_structure({"a": [torch.ones(4)] * 3}) == 16  # one storage, counted once
    loop = argparse.Namespace()
    loop.me = loop
    with pytest.raises(UnreadableCheckpoint, match="contains itself"):
        check_structure({"args": loop})
    config = OmegaConf.create({"a": {"b": {"c": 1}}})  # children point back at parents: not a cycle
    check_structure(config)


def test_a_real_checkpoint_in_both_formats_passes_the_budgets(tmp_path):
    from w2v2bench.convert.safe_pickle import load_checkpoint

    numpy_values = {
        "best_loss": np.float64(3.25),
        "steps": np.int64(7),
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(6).reshape(2, 3)),
        "big_endian": np.arange(3, dtype=">i4"),
        "strings": np.array(["ab", "c"]),
        "objects": np.array(["ab", None, 3], dtype=object),
    }
    for zip_format in (True, False):
        checkpoint = fairseq_checkpoint(tiny_model("layer"), "args", normalize=True)
        checkpoint["extra_state"]["numpy"] = numpy_values
        path = save(checkpoint, tmp_path / f"ft-{zip_format}.pt", zip_format)
        loaded = load_checkpoint(path)
        got = loaded.content["extra_state"]["numpy"]
        for key, value in numpy_values.items():
            found = got[key].array if isinstance(value, np.ndarray) else got[key]
            assert np.array_equal(found, value) and found.dtype == value.dtype, key
        assert torch.equal(
            loaded.content["model"]["w2v_encoder.proj.weight"], checkpoint["model"]["w2v_encoder.proj.weight"]
        )
        assert loaded.placeholders == ("fairseq.dataclass.constants.DdpBackend", "fairseq.logging.meters.AverageMeter")
