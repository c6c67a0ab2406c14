"""Seeded fuzzing of what xmkd reads: ``.skeleton`` files, checkpoints and ONNX models.

Every variant must either be read or give the project's one-sentence error (an XmkdError naming
the file), never another exception and never a hang (each variant is small). The variants are
generated from fixed seeds, so a failure reproduces. Counts per kind (accepted / rejected) are
printed at the end of the module (visible with ``pytest -rP``) and written to
``fuzz_inputs.json`` in pytest's base temporary folder.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from xmkd.errors import XmkdError
from xmkd.ntu import SkeletonSequence, format_skeleton, parse_skeleton
from xmkd.ntu import skeleton_file as sf

SEED = 20240909
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def fuzz_report(tmp_path_factory):
    yield
    summary = {kind: dict(counts) for kind, counts in sorted(COUNTS.items())}
    total = collections.Counter()
    for counts in COUNTS.values():
        total.update(counts)
    summary["total"] = dict(total)
    out = tmp_path_factory.getbasetemp() / "fuzz_inputs.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\nfuzz variants (accepted/rejected per kind), also in {out}:")
    for kind, counts in summary.items():
        print(
            f"  {kind:34s} {counts.get('accepted', 0):5d} accepted {counts.get('rejected', 0):5d}"
        )


def _outcome(kind: str, call: Callable[[], object], name: str) -> object:
    """Run ``call``: its result, or the message of the XmkdError it raised (checked to be one
    short sentence naming ``name``). Any other exception fails the test."""
    try:
        result = call()
    except XmkdError as err:
        message = str(err)
        assert "\n" not in message and len(message) < 600, message[:600]
        assert name in message, message
        COUNTS[kind]["rejected"] += 1
        return message
    COUNTS[kind]["accepted"] += 1
    return result


# --- .skeleton files ----------------------------------------------------------------------------


def _base_file(rng: np.random.Generator) -> tuple[bytes, SkeletonSequence]:
    """A valid file: 3 frames with 1, 0 and 2 bodies."""
    counts = [1, 0, 2]
    joints = np.round(rng.normal(size=(3, 25, 12)), 6)
    joints[..., 11] = 2
    seq = SkeletonSequence.from_arrays(counts, [7, 7, 9], joints)
    return format_skeleton(seq).encode(), seq


def _skeleton_variants(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    data, _ = _base_file(rng)
    lines = data.split(b"\r\n")
    variants: list[tuple[str, bytes]] = [("empty", b""), ("empty", b" \r\n\t\n"), ("empty", b"\n")]
    for cut in rng.integers(0, len(data), 60):
        variants.append(("truncated", data[: int(cut)]))
    for where, values in ((0, [b"0", b"2", b"4", b"99", b"1" * 30, b"-1", b"3.5"]),
                          (1, [b"0", b"2", b"5"]), (3, [b"0", b"24", b"26", b"25.0"])):  # fmt: skip
        for value in values:
            variants.append(
                ("wrong counts", b"\r\n".join([*lines[:where], value, *lines[where + 1 :]]))
            )
    tokens_at = [(i, j) for i, line in enumerate(lines) for j in range(len(line.split()))]
    junk = [b"abc", b"1.2.3", b"--1", b"0x10", b"1_0", b"\xff\xfe", b"1e", b".", b"+", b"\x00"]
    for _ in range(60):
        i, j = tokens_at[int(rng.integers(len(tokens_at)))]
        edited = lines[i].split()
        edited[j] = junk[int(rng.integers(len(junk)))]
        variants.append(
            ("non-number", b"\r\n".join([*lines[:i], b" ".join(edited), *lines[i + 1 :]]))
        )
    # NaN/inf in every field kind: body ID, the 9 body fields, the 12 joint fields, the counts
    spellings = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e999", b"-1E400"]
    for line_no, width in ((2, 10), (4, 12), (28, 12)):  # info line, joint 1, joint 25
        for j in range(width):
            for spelling in spellings:
                edited = lines[line_no].split()
                edited[j] = spelling
                variants.append(
                    (
                        "non-finite",
                        b"\r\n".join([*lines[:line_no], b" ".join(edited), *lines[line_no + 1 :]]),
                    )
                )
    for line_no in (0, 1, 3):
        for spelling in spellings[:4]:
            variants.append(
                ("non-finite", b"\r\n".join([*lines[:line_no], spelling, *lines[line_no + 1 :]]))
            )
    for _ in range(6):  # a 1 MB token anywhere
        at = int(rng.integers(len(data)))
        token = bytes(rng.choice(list(b"0123456789.-eEx"), 1 << 20).tolist())
        variants.append(("huge token", data[:at] + token + data[at:]))
    for _ in range(20):
        variants.append(("binary junk", rng.bytes(int(rng.integers(1, 3000)))))
        at = int(rng.integers(len(data)))
        variants.append(
            ("binary junk", data[:at] + rng.bytes(int(rng.integers(1, 40))) + data[at:])
        )
    for _ in range(15):  # every line ending chosen at random: CRLF or LF (both valid)
        ends = rng.choice([b"\r\n", b"\n"], len(lines))
        variants.append(("line endings", b"".join(a + b for a, b in zip(lines, ends))))
    for _ in range(5):  # one line ending a lone CR (old Mac): its line runs into the next
        ends = [b"\r\n"] * len(lines)
        ends[int(rng.integers(len(lines) - 1))] = b"\r"
        variants.append(("line endings", b"".join(a + b for a, b in zip(lines, ends))))
    return variants


def test_skeleton_variants_read_or_one_sentence(monkeypatch):
    """Both fast paths (C where built, numpy) and the exact scan: the same outcome per variant."""
    rng = np.random.default_rng(SEED)
    for kind, data in _skeleton_variants(rng):
        with_c = _outcome(
            f"skeleton: {kind}",
            lambda data=data: parse_skeleton(data, "fuzz.skeleton"),
            "fuzz.skeleton",
        )
        with monkeypatch.context() as patch:
            patch.setattr(sf, "_fastparse", None)
            try:
                numpy_path = parse_skeleton(data, "fuzz.skeleton")
            except XmkdError as err:
                numpy_path = str(err)
        if isinstance(with_c, str):
            assert numpy_path == with_c
            if kind == "non-finite":
                assert "expected a finite number" in with_c or "whole number" in with_c, with_c
        else:
            assert numpy_path.equals(with_c)
            assert np.isfinite(with_c.joints).all() and np.isfinite(with_c.body_info).all()
            assert kind not in ("non-finite", "empty", "huge token"), kind
    assert COUNTS["skeleton: line endings"]["accepted"] > 0
    assert COUNTS["skeleton: non-finite"]["accepted"] == 0


def _write_sample(path: Path, seed: int, token: bytes | None = None) -> Path:
    data, _ = _base_file(np.random.default_rng(seed))
    if token is not None:
        lines = data.split(b"\r\n")
        lines[5] = b" ".join([token, *lines[5].split()[1:]])
        data = b"\r\n".join(lines)
    path.write_bytes(data)
    return path


def test_prepare_ntu_folder_with_fifo_device_nan_duplicates_and_huge_tokens(tmp_path, capsys):
    """A FIFO named like a sample (hung prepare-ntu), a link to /dev/zero (grew to 6.6 GB), NaN
    values (packed, then trained to NaN), a sample in two subfolders (packed twice), a 2 MB token
    (a 2 MB message and manifest): each is listed, nothing hangs, the manifest stays small."""
    from xmkd.cli import main
    from xmkd.ntu.pack import PackedNTU

    root = tmp_path / "skeletons"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    _write_sample(root / "a" / "S001C001P001R001A001.skeleton", 0)
    _write_sample(root / "b" / "S001C001P001R001A001.skeleton", 1)  # same sample again
    _write_sample(root / "a" / "S001C001P001R001A002.skeleton", 2)
    _write_sample(root / "a" / "S001C001P001R001A003.skeleton", 3, token=b"nan")
    _write_sample(root / "a" / "S001C001P002R001A004.skeleton", 4, token=b"7" * (2 << 20) + b"x")
    os.mkfifo(root / "a" / "S001C001P001R001A005.skeleton")
    (root / "a" / "S001C001P001R001A006.skeleton").symlink_to("/dev/zero")
    out = tmp_path / "packed"
    args = ["prepare-ntu", "--skeletons", str(root), "--out", str(out), "--workers", "1",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    report = capsys.readouterr().out
    assert "train 2" in report  # A001 once, A002
    assert "4 malformed files left out" in report
    assert "A005.skeleton: is a FIFO (named pipe), not a regular .skeleton file" in report
    assert "A006.skeleton: is a character device" in report
    assert "A003.skeleton, line 6: expected a finite number for x of joint 2" in report
    assert "A004.skeleton, line 6: expected a number for x of joint 2" in report
    dropped = str(root / "b" / "S001C001P001R001A001.skeleton")
    kept = str(root / "a" / "S001C001P001R001A001.skeleton")
    assert f"ignored {dropped}: the same sample as {kept}, which was packed" in report
    assert len(report) < 5000
    manifest = (out / "manifest.json").read_text()
    assert len(manifest) < 10000
    assert json.loads(manifest)["duplicates"] == [{"file": dropped, "kept": kept}]
    assert PackedNTU(out, "train").names == ["S001C001P001R001A001", "S001C001P001R001A002"]
    # --allow-nonfinite packs the NaN file
    assert main([*args[:4], str(tmp_path / "packed2"), *args[5:], "--allow-nonfinite"]) == 0
    assert "3 malformed files left out" in capsys.readouterr().out
    names = PackedNTU(tmp_path / "packed2", "train").names
    assert "S001C001P001R001A003" in names


def test_ntu_replay_refuses_a_fifo_at_open(tmp_path):
    from capture.ntu_replay import NTUReplaySource

    _write_sample(tmp_path / "S001C001P001R001A001.skeleton", 0)
    os.mkfifo(tmp_path / "S001C001P001R001A002.skeleton")
    source = NTUReplaySource(tmp_path, realtime=False, video=False)
    with pytest.raises(XmkdError, match=r"A002.skeleton: is a FIFO \(named pipe\)"):
        source.open()
    with pytest.raises(XmkdError, match=r"A002.skeleton: is a FIFO"):
        NTUReplaySource(tmp_path / "S001C001P001R001A002.skeleton", video=False).open()


# --- checkpoints --------------------------------------------------------------------------------

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"xmkd-fuzz-pwned-{os.getpid()}"


class Malicious:
    """Unpickling this runs a shell command that creates MARKER: weights_only must refuse it."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    model = build_student("stgcn", 4, width=0.125)
    spec = default_input_spec("stgcn", window=16).to_dict()
    payload = make_checkpoint("students", [("stgcn", {"width": 0.125}, model)], list("abcd"), spec)
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "good.pt", payload)
    return path, payload


def _checkpoint_variants(rng, good: Path, payload: dict) -> list[tuple[str, object]]:
    import copy

    raw = good.read_bytes()
    variants: list[tuple[str, object]] = []
    for cut in rng.integers(0, len(raw), 10):
        variants.append(("truncated", raw[: int(cut)]))
    variants += [("random bytes", rng.bytes(int(n))) for n in rng.integers(1, 100_000, 5)]
    variants.append(
        ("malicious pickle", pickle.dumps({"format": "xmkd-checkpoint", "x": Malicious()}))
    )
    variants.append(("malicious pickle", {**payload, "extra": {"x": Malicious()}}))
    for _ in range(30):  # one flipped bit anywhere in the file
        flipped = bytearray(raw)
        flipped[int(rng.integers(len(raw)))] ^= 1 << int(rng.integers(8))
        variants.append(("flipped bits", bytes(flipped)))
    variants.append(("wrong kind", {**payload, "kind": "teacher"}))
    variants.append(("wrong kind", {"format": "something else"}))
    variants.append(("wrong kind", [1, 2, 3]))
    for key in ("format", "version", "kind", "class_names", "num_classes", "input_spec", "models",
                "ensemble"):  # fmt: skip
        # num_classes follows from class_names and the ensemble rule defaults to the mean
        missing = (
            "missing optional field" if key in ("num_classes", "ensemble") else "missing field"
        )
        variants.append((missing, {k: v for k, v in payload.items() if k != key}))
        for value in (None, 5, -1, "x", [], {}, 2.5, True):
            variants.append(("ill-typed field", {**payload, key: value}))
    for key in ("arch", "kwargs", "state_dict"):
        for value in (None, 5, "x", {}, [], {"x": 1}):
            bad = copy.deepcopy(payload)
            bad["models"][0][key] = value
            variants.append(("bad model entry", bad))
    for kwargs in ({"width": 1e9}, {"width": -1.0}, {"width": float("nan")}, {"width": 60.0},
                   {"bogus": 1}, {"graph_args": {"layout": "x"}}, {"dropout": "x"}):  # fmt: skip
        bad = copy.deepcopy(payload)
        bad["models"][0]["kwargs"] = kwargs
        variants.append(("absurd sizes", bad))
    for spec in ({"window": 10**12}, {"window": 0}, {"num_persons": 10**9}, {"window": "x"}):
        variants.append(("absurd sizes", {**payload, "input_spec": spec}))
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = copy.deepcopy(payload)
        state = bad["models"][0]["state_dict"]
        key = sorted(k for k, v in state.items() if v.is_floating_point())[int(rng.integers(10))]
        state[key].view(-1)[0] = value
        variants.append(("nan weights", bad))
    return variants


def test_checkpoint_variants_load_or_one_sentence(tmp_path, good_checkpoint):
    from xmkd.checkpoint import load_students, save_checkpoint

    good, payload = good_checkpoint
    rng = np.random.default_rng(SEED + 1)
    MARKER.unlink(missing_ok=True)
    for n, (kind, variant) in enumerate(_checkpoint_variants(rng, good, payload)):
        path = tmp_path / f"v{n}.pt"
        if isinstance(variant, bytes):
            path.write_bytes(variant)
        elif kind == "nan weights":
            save_checkpoint(path, variant)  # with a digest, as a diverged run would save
        else:
            torch.save(variant, path)  # as a foreign or damaged writer would
        result = _outcome(f"checkpoint: {kind}", lambda path=path: load_students(path), path.name)
        if kind in ("nan weights", "malicious pickle", "missing field", "absurd sizes"):
            assert isinstance(result, str), (kind, n)
        path.unlink()
    assert not MARKER.exists(), "a pickled global ran while loading a checkpoint"
    assert COUNTS["checkpoint: flipped bits"]["rejected"] > 0


# --- ONNX ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory) -> Path:
    from engines.export import export_checked
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    model = build_student("stgcn", 4, width=0.125)
    meta = {
        "class_names": list("abcd"),
        "input_spec": default_input_spec("stgcn", window=16).to_dict(),
    }
    path = tmp_path_factory.mktemp("onnx") / "good.onnx"
    return export_checked(model, path, 16, exporter="torchscript", metadata=meta).path


def _onnx_variants(rng, good: Path) -> list[tuple[str, bytes]]:
    import onnx
    from onnx import numpy_helper

    raw = good.read_bytes()
    proto = onnx.load(str(good))
    variants = [("truncated", raw[: int(cut)]) for cut in rng.integers(0, len(raw), 10)]
    variants += [("random bytes", rng.bytes(int(n))) for n in rng.integers(1, 50_000, 5)]
    variants.append(("empty", b""))
    for _ in range(10):
        flipped = bytearray(raw)
        flipped[int(rng.integers(len(raw)))] ^= 1 << int(rng.integers(8))
        variants.append(("flipped bits", bytes(flipped)))

    def edited(change: Callable) -> bytes:
        copy = onnx.ModelProto.FromString(proto.SerializeToString())
        change(copy)
        return copy.SerializeToString()

    def set_meta(value: str):
        def change(p):
            next(m for m in p.metadata_props if m.key == "xmkd").value = value

        return change

    variants.append(
        ("no xmkd metadata", edited(lambda p: p.metadata_props.__delitem__(slice(None))))
    )
    info = json.loads(next(m.value for m in proto.metadata_props if m.key == "xmkd"))
    for value in ("{not json", "[1, 2]", "null", json.dumps({**info, "class_names": "abcd"}),
                  json.dumps({**info, "class_names": [1, 2]}),
                  json.dumps({**info, "input_spec": {"window": 10**12}}),
                  json.dumps({**info, "input_spec": {"bogus": 1}}),
                  json.dumps({**info, "parity": {**info["parity"], "random_max_abs_diff": 1.0}}),
                  json.dumps({**info, "parity": "ok"})):  # fmt: skip
        variants.append(("bad metadata", edited(set_meta(value))))
    for value in (np.nan, np.inf):

        def poison(p, value=value):
            tensor = next(t for t in p.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
            array = numpy_helper.to_array(tensor).copy()
            array.flat[int(rng.integers(array.size))] = value
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))

        variants.append(("nan initializers", edited(poison)))
    return variants


def test_onnx_variants_load_or_one_sentence(tmp_path, good_onnx):
    from engines.backends import ModelSource
    from engines.export import onnx_session

    rng = np.random.default_rng(SEED + 2)
    x = np.zeros((1, 3, 16, 25, 2), dtype=np.float32)
    for n, (kind, data) in enumerate(_onnx_variants(rng, good_onnx)):
        path = tmp_path / f"v{n}.onnx"
        path.write_bytes(data)

        def load_and_run(path=path, kind=kind):
            source = ModelSource.from_onnx(path)
            probs = onnx_session(source.onnx_file()).run(["probs"], {"skeleton": x})[0]
            if not np.isfinite(probs).all():  # what live printed as NaN probabilities
                raise AssertionError(f"{kind}: NaN probabilities from an accepted file")
            return probs

        result = _outcome(f"onnx: {kind}", load_and_run, path.name)
        if kind not in ("flipped bits",):
            assert isinstance(result, str), (kind, n)
    assert COUNTS["onnx: bad metadata"]["rejected"] == 9
