"""NTU .skeleton reading/writing, sample names, body selection and `xmkd inspect`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from xmkd.errors import FormatError
from xmkd.ntu import (
    SampleName,
    SampleNameError,
    SkeletonSequence,
    format_skeleton,
    parse_skeleton,
    read_skeleton,
    to_model_array,
    write_skeleton,
)
from xmkd.ntu import skeleton_file as sf

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_ntu_reader", REPO / "bench" / "bench_ntu_reader.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


@pytest.fixture
def sample(any_ntu_samples):
    """(path, bytes, lines) of the single-body sample S001C001P001R001A011 (82 frames)."""
    path = next(p for p in any_ntu_samples if p.name.startswith("S001C001P001R001A011"))
    data = path.read_bytes()
    return path, data, data.decode("ascii").split("\r\n")


def _sequence(counts, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    total = int(sum(counts))
    joints = np.round(rng.normal(size=(total, 25, 12)), 7)
    joints[..., 11] = rng.integers(0, 3, size=(total, 25))
    info = np.round(rng.normal(size=(total, 9)), 7)
    info[:, [0, 1, 2, 3, 4, 5, 8]] = rng.integers(0, 3, size=(total, 7))
    if ids is None:
        ids = 72057594037927936 + rng.integers(0, 10**6, size=total).astype(np.uint64)
    return SkeletonSequence.from_arrays(counts, ids, joints, info)


# --- reading real samples ---------------------------------------------------------------------


def test_real_samples_round_trip_exactly(any_ntu_samples, tmp_path):
    for path in any_ntu_samples:
        seq = read_skeleton(path)
        assert seq.num_frames == int(path.read_text().split()[0])
        assert seq.body_ids.dtype == np.uint64 and seq.joints.shape[1:] == (25, 12)
        out = tmp_path / path.name
        write_skeleton(out, seq)
        again = read_skeleton(out)
        assert again.equals(seq)
        assert np.array_equal(again.body_ids, seq.body_ids)
        # Written in the original's style: the very same bytes (incl. exponents like 1E-05).
        assert out.read_bytes() == path.read_bytes()


def test_body_ids_are_exact_64_bit(sample):
    path, data, lines = sample
    seq = read_skeleton(path)
    first_id = int(lines[2].split()[0])
    assert first_id > 2**53  # beyond float64 precision
    assert int(seq.body_ids[0]) == first_id


def test_fast_and_exact_paths_agree(any_ntu_samples):
    for path in any_ntu_samples:
        data = path.read_bytes()
        fast = sf._parse_fast(data)
        assert fast is not None, f"{path.name} fell back to the slow path"
        assert fast.equals(sf._parse_exact(data, path))


def test_reference_reader_agrees(any_ntu_samples, bench):
    for path in any_ntu_samples:
        seq = read_skeleton(path)
        ref = bench.reference_read(path)
        assert ref["numFrame"] == seq.num_frames
        assert [f["numBody"] for f in ref["frameInfo"]] == seq.body_counts.tolist()
        assert np.array_equal(bench.reference_joints(ref), seq.joints)
        bodies = [b for f in ref["frameInfo"] for b in f["bodyInfo"]]
        info = np.array([[b[k] for k in sf.BODY_INFO_FIELDS] for b in bodies])
        assert np.array_equal(info.reshape(-1, 9), seq.body_info)


def test_lf_and_crlf_parse_the_same(sample, tmp_path):
    path, data, _ = sample
    lf = tmp_path / "lf.skeleton"
    lf.write_bytes(data.replace(b"\r\n", b"\n"))
    assert read_skeleton(lf).equals(read_skeleton(path))
    write_skeleton(tmp_path / "w.skeleton", read_skeleton(path), newline="\n")
    assert b"\r" not in (tmp_path / "w.skeleton").read_bytes()


def test_zero_body_frames_and_many_bodies(tmp_path):
    seq = _sequence([0, 3, 1, 0, 4, 2, 0])
    path = tmp_path / "S001C001P001R001A050.skeleton"
    write_skeleton(path, seq)
    again = read_skeleton(path)
    assert again.equals(seq)
    assert again.frame(0).joints.shape == (0, 25, 12)
    assert np.array_equal(again.frame(4).body_ids, seq.body_ids[4:8])
    assert sf._parse_fast(path.read_bytes()) is not None
    # A file that is all zero-body frames, and one with no frames at all.
    for counts in ([0, 0, 0], []):
        empty = SkeletonSequence.from_arrays(counts, [], np.zeros((0, 25, 12)))
        write_skeleton(path, empty)
        assert read_skeleton(path).equals(empty)


def test_from_arrays_positions_only_defaults(tmp_path):
    xyz = np.arange(2 * 25 * 3, dtype=float).reshape(2, 25, 3) / 7
    seq = SkeletonSequence.from_arrays([1, 1], [5, 5], xyz)
    assert np.array_equal(seq.joints[..., :3], xyz)
    assert (seq.joints[..., 11] == 2).all() and (seq.body_info[:, 8] == 2).all()
    write_skeleton(tmp_path / "a.skeleton", seq)
    text = (tmp_path / "a.skeleton").read_text()
    assert text.splitlines()[2] == "5 0 0 0 0 0 0 0 0 2"
    assert read_skeleton(tmp_path / "a.skeleton").equals(seq)


def test_numbers_round_trip_through_text():
    values = [0.1, -0.0, 1e-05, -7.257856e-05, 123456.789, 2.0, 1e16, 0.30000000000000004]
    joints = np.zeros((1, 25, 12))
    joints.flat[: len(values)] = values
    seq = SkeletonSequence.from_arrays([1], [2**64 - 1], joints)
    text = format_skeleton(seq)
    again = parse_skeleton(text.encode())
    assert again.equals(seq) and int(again.body_ids[0]) == 2**64 - 1
    assert np.signbit(again.joints.flat[1])


def test_fast_path_matches_float_on_awkward_numbers():
    rng = np.random.default_rng(1)
    tokens = ["0", "-0", "5.", ".5", "-.5", "123456789012345", "-1.23456789012345", "0.000000001"]
    tokens += [repr(float(x)) for x in rng.normal(scale=1000, size=200)]
    tokens += [f"{x:.{d}f}" for x, d in zip(rng.normal(size=100), rng.integers(0, 13, 100))]
    joints = np.array([float(t) for t in tokens[:300]] + [0.0] * (300 - len(tokens[:300])))
    lines = ["1", "1", "1 0 0 0 0 0 0 0 0 2", "25"]
    flat = tokens[:300] + ["0"] * (300 - len(tokens[:300]))
    lines += [" ".join(flat[i : i + 12]) for i in range(0, 300, 12)]
    data = ("\n".join(lines) + "\n").encode()
    fast = sf._parse_fast(data)
    assert fast is not None
    assert np.array_equal(fast.joints.reshape(-1), joints)
    assert np.array_equal(np.signbit(fast.joints.reshape(-1)), np.signbit(joints))


# --- malformed files --------------------------------------------------------------------------
# Lines of the 1-body sample: 1 frame count; frame f starts at line 2 + 28 (f - 1) with its body
# count, then the info line, the joint count and 25 joint lines.


def _frame_line(f):
    return 2 + 28 * (f - 1)


def _joint_line(f, j):
    return _frame_line(f) + 2 + j


def _expect_error(tmp_path, lines, line, *phrases):
    path = tmp_path / "S001C001P001R001A011.skeleton"
    path.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(FormatError) as info:
        read_skeleton(path)
    err = info.value
    assert err.path == str(path) and err.line == line, str(err)
    message = str(err)
    assert message.startswith(f"{path}, line {line}: ")
    for phrase in phrases:
        assert phrase in message, message


def test_truncated_mid_joint(sample, tmp_path):
    _, _, lines = sample
    n = _joint_line(3, 7)
    cut = lines[: n - 1] + [" ".join(lines[n - 1].split()[:11])]
    _expect_error(
        tmp_path, cut, n, "expected 12 numbers for joint 7 of body 1 in frame 3, found 11"
    )


def test_truncated_mid_line_bytes(sample, tmp_path):
    _, data, _ = sample
    # Cut the bytes in the middle of a number on joint 7 of frame 3.
    offset = sum(len(x) + 2 for x in data.decode().split("\r\n")[: _joint_line(3, 7) - 1])
    path = tmp_path / "cut.skeleton"
    path.write_bytes(data[: offset + 30])
    with pytest.raises(FormatError, match=r"line 67: expected 12 numbers for joint 7 of body 1 in"):
        read_skeleton(path)


def test_truncated_mid_body(sample, tmp_path):
    _, _, lines = sample
    n = _joint_line(3, 10)
    _expect_error(
        tmp_path, lines[:n] + [""], n + 1, "ends after 70 lines", "joint 11 of body 1 in frame 3"
    )


def test_wrong_joint_count(sample, tmp_path):
    _, _, lines = sample
    bad = list(lines)
    n = _frame_line(2) + 2
    bad[n - 1] = "24"
    _expect_error(tmp_path, bad, n, "expected 25 as the joint count of body 1 in frame 2, found 24")


def test_non_number(sample, tmp_path):
    _, _, lines = sample
    bad = list(lines)
    n = _joint_line(5, 7)
    tokens = bad[n - 1].split()
    tokens[3] = "abc"
    bad[n - 1] = " ".join(tokens)
    _expect_error(
        tmp_path, bad, n, "expected a number for depthX of joint 7 of body 1 in frame 5", "'abc'"
    )


def test_body_count_larger_than_present(sample, tmp_path):
    _, _, lines = sample
    bad = list(lines)
    n = _frame_line(82)
    bad[n - 1] = "2"
    _expect_error(
        tmp_path, bad, _frame_line(83), "body ID and the 9 body fields of body 2 in frame 82"
    )
    bad = list(lines)
    n = _frame_line(40)
    bad[n - 1] = "2"  # body 2 of frame 40 would start where frame 41's count is
    _expect_error(
        tmp_path, bad, _frame_line(41), "expected 10 numbers for the body ID", "frame 40, found 1"
    )


def test_extra_trailing_data(sample, tmp_path):
    _, _, lines = sample
    extra = lines[:-1] + ["1 2 3", ""]
    _expect_error(tmp_path, extra, len(lines), "unexpected data after the last of the 82 frames")


def test_bad_counts_and_ids(sample, tmp_path):
    _, _, lines = sample
    _expect_error(tmp_path, ["x"] + lines[1:], 1, "the frame count", "'x'")
    bad = list(lines)
    bad[_frame_line(2) - 1] = "1.5"
    _expect_error(tmp_path, bad, _frame_line(2), "whole number", "body count of frame 2")
    bad = list(lines)
    tokens = bad[_frame_line(2)].split()
    bad[_frame_line(2)] = " ".join(["-3"] + tokens[1:])
    _expect_error(tmp_path, bad, _frame_line(2) + 1, "body ID of body 1 in frame 2", "'-3'")
    _expect_error(tmp_path, [], 1, "the frame count", "truncated")
    bad = list(lines)
    bad[_joint_line(2, 1) - 1] = bad[_joint_line(2, 1) - 1].replace(" ", " 1-2 ", 1)
    _expect_error(tmp_path, bad, _joint_line(2, 1), "joint 1 of body 1 in frame 2")


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        read_skeleton(tmp_path / "nope.skeleton")


def _one_body_file(token: bytes = b"0.5", field: int = 7) -> bytes:
    tokens = [b"0.5"] * 300
    tokens[field] = token
    lines = [b"1", b"1", b"1 0 0 0 0 0 0 0 0 2", b"25"]
    lines += [b" ".join(tokens[i : i + 12]) for i in range(0, 300, 12)]
    return b"\r\n".join(lines) + b"\r\n"


@pytest.mark.parametrize("token", [b"nan", b"NaN", b"-inf", b"inf", b"1e999", b"-1E400"])
def test_nonfinite_values_are_refused_with_file_and_line(tmp_path, token):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_bytes(_one_body_file(token, field=13))  # y of joint 2
    with pytest.raises(FormatError) as info:
        read_skeleton(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 6: expected a finite number for y of joint 2")
    assert "--allow-nonfinite" in message
    seq = read_skeleton(path, allow_nonfinite=True)
    assert not np.isfinite(seq.joints[0, 1, 1])


def test_long_tokens_are_cut_in_messages(tmp_path):
    """A corrupt file with a 5 MB "number" gives a short message, not a 5 MB one."""
    for data in (
        _one_body_file(b"x" * 5_000_000),
        _one_body_file(b"9" * 5_000_000 + b"x"),
        b"1\r\n" + b"7" * 3_000_000 + b"a\r\n",
        _one_body_file() + b"z" * 2_000_000 + b"\r\n",
    ):
        path = tmp_path / "long.skeleton"
        path.write_bytes(data)
        with pytest.raises(FormatError) as info:
            read_skeleton(path)
        message = str(info.value)
        assert len(message) < 400, message[:400]
        assert "characters)" in message


def test_fifo_and_devices_are_refused_without_opening(tmp_path):
    fifo = tmp_path / "x.skeleton"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(FormatError, match=r"x.skeleton: is a FIFO \(named pipe\), not a regular"):
        read_skeleton(fifo)
    zero = tmp_path / "zero.skeleton"
    zero.symlink_to("/dev/zero")
    with pytest.raises(FormatError, match=r"zero.skeleton: is a character device"):
        read_skeleton(zero)
    with pytest.raises(FormatError, match="is a folder"):
        read_skeleton(tmp_path)
    real = tmp_path / "real.skeleton"
    real.write_bytes(_one_body_file())
    link = tmp_path / "link.skeleton"
    link.symlink_to(real)  # a link to a regular file is read
    assert read_skeleton(link).equals(read_skeleton(real))


def test_files_beyond_the_size_cap_are_refused(tmp_path, monkeypatch):
    big = tmp_path / "big.skeleton"
    with open(big, "wb") as fh:  # sparse: no disk space used
        fh.truncate(sf.MAX_FILE_BYTES + 1)
    with pytest.raises(FormatError, match=r"big.skeleton: is 64 MiB, larger than any .skeleton"):
        read_skeleton(big)
    small = tmp_path / "small.skeleton"
    small.write_bytes(_one_body_file())
    monkeypatch.setattr(sf, "MAX_FILE_BYTES", 100)
    with pytest.raises(FormatError, match="larger than any .skeleton file xmkd reads"):
        read_skeleton(small)


# --- sample names -----------------------------------------------------------------------------


def test_sample_name_round_trip_and_fields():
    name = SampleName.parse("S001C002P003R001A004")
    assert (name.setup, name.camera, name.performer, name.replication, name.action) == (
        1,
        2,
        3,
        1,
        4,
    )
    assert str(name) == "S001C002P003R001A004" and name.label == 3
    assert SampleName(17, 3, 40, 2, 120) == SampleName.parse(str(SampleName(17, 3, 40, 2, 120)))
    assert SampleName.from_path("/x/S001C002P003R001A004.skeleton") == name
    assert SampleName.from_path("S001C002P003R001A004_rgb.avi") == name
    assert SampleName.parse("S001C001P001R001A000").label == -1


@pytest.mark.parametrize(
    "bad", ["", "S01C002P003R001A004", "S001C002P003R001A004.skeleton", "s001c002p003r001a004"]
)
def test_sample_name_errors(bad):
    with pytest.raises(SampleNameError, match="not an NTU sample name"):
        SampleName.parse(bad)
    with pytest.raises(SampleNameError, match="not named after an NTU sample"):
        SampleName.from_path(f"/data/{bad or 'x'}_foo.avi")
    with pytest.raises(SampleNameError):
        SampleName(1000, 1, 1, 1, 1)


# --- body selection ---------------------------------------------------------------------------


def _reference_gendata_read_xyz(bench, path, max_body=2, num_joint=25):
    """st-gcn ntu_gendata.read_xyz, the reference body selection (first bodies listed)."""
    seq = bench.reference_read(path)
    data = np.zeros((3, seq["numFrame"], num_joint, max_body))
    for n, f in enumerate(seq["frameInfo"]):
        for m, b in enumerate(f["bodyInfo"]):
            for j, v in enumerate(b["jointInfo"]):
                if m < max_body and j < num_joint:
                    data[:, n, j, m] = [v["x"], v["y"], v["z"]]
    return data


def test_first_selection_equals_reference(any_ntu_samples, bench, tmp_path):
    seq = _sequence([1, 3, 0, 2, 3, 1], seed=3)
    path = tmp_path / "S001C001P001R001A050.skeleton"
    write_skeleton(path, seq)
    for p in [*any_ntu_samples, path]:
        ref = _reference_gendata_read_xyz(bench, p).astype(np.float32)
        ours, valid = to_model_array(read_skeleton(p), selection="first")
        assert ours.dtype == np.float32 and valid == ref.shape[1]
        assert np.array_equal(ours, ref)
        padded, valid = to_model_array(read_skeleton(p), max_frames=300, selection="first")
        assert padded.shape == (3, 300, 25, 2) and valid == ref.shape[1]
        assert np.array_equal(padded[:, :valid], ref) and not padded[:, valid:].any()


def test_motion_selection_keeps_moving_bodies_in_fixed_slots():
    frames = 20
    rng = np.random.default_rng(0)
    still = np.tile(rng.normal(size=(25, 3)), (frames, 1, 1))  # a still "body" (furniture)
    mover_a = still + np.linspace(0, 1, frames)[:, None, None]
    mover_b = still - np.sin(np.linspace(0, 6, frames))[:, None, None]
    ids, joints, counts = [], [], []
    for t in range(frames):
        # The still body is listed first; mover B joins at frame 5; listing order flips at 10.
        bodies = [(7, still[t]), (1, mover_a[t])] + ([(9, mover_b[t])] if t >= 5 else [])
        if t >= 10:
            bodies = bodies[::-1]
        counts.append(len(bodies))
        ids += [b[0] for b in bodies]
        joints += [b[1] for b in bodies]
    seq = SkeletonSequence.from_arrays(counts, ids, np.array(joints))
    arr, valid = to_model_array(seq, max_bodies=2, selection="motion")
    assert valid == frames and arr.shape == (3, frames, 25, 2)
    # Slot 0: mover A (first to appear of the two kept), whole clip; slot 1: mover B from frame 5.
    assert np.allclose(arr[:, :, :, 0], mover_a.transpose(2, 0, 1))
    assert not arr[:, :5, :, 1].any()
    assert np.allclose(arr[:, 5:, :, 1], mover_b[5:].transpose(2, 0, 1))
    # "first" keeps the still body in the early frames and swaps slots when the order flips.
    first, _ = to_model_array(seq, selection="first")
    assert np.allclose(first[:, 0, :, 0], still[0].T)
    # Cropping and padding.
    cropped, valid = to_model_array(seq, max_frames=8)
    assert cropped.shape == (3, 8, 25, 2) and valid == 8
    assert np.array_equal(cropped, arr[:, :8])
    with pytest.raises(ValueError, match="selection"):
        to_model_array(seq, selection="biggest")


# --- xmkd inspect -----------------------------------------------------------------------------


def test_inspect_text_and_json(any_ntu_samples, capsys):
    from xmkd.cli import main

    path = next(p for p in any_ntu_samples if "A058" in p.name)
    seq = read_skeleton(path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "70 frames, 140 body entries" in out and "2 bodies: 70 frames" in out
    assert "S001C003P008R002A058" in out and "action 58 (label 57)" in out
    assert "joint tracking states: " in out and "tracked (2): " in out
    for body_id in np.unique(seq.body_ids):
        assert str(body_id) in out
    assert main(["inspect", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["num_frames"] == 70 and len(doc["frames"]) == 70
    body = doc["frames"][3]["bodies"][1]
    assert body["bodyID"] == int(seq.frame(3).body_ids[1])
    assert body["joints"][6]["depthX"] == seq.frame(3).joints[1, 6, 3]
    assert body["trackingState"] == seq.frame(3).body_info[1, 8]
    assert doc["sample"]["action"] == 58


def test_inspect_errors(tmp_path, capsys):
    from xmkd.cli import main

    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello")
    assert main(["inspect", str(unknown)]) == 2
    assert "cannot tell what" in capsys.readouterr().err
    bad = tmp_path / "S001C001P001R001A001.skeleton"
    bad.write_text("2\r\n0\r\n")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 3" in err


def test_fast_path_threads_and_fresh_buffers(any_ntu_samples, monkeypatch):
    import threading

    expected = [sf._parse_exact(p.read_bytes(), p) for p in any_ntu_samples]
    results = []

    def work():
        for path, want in zip(any_ntu_samples, expected):
            results.append(read_skeleton(path).equals(want))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 3 * len(any_ntu_samples)
    monkeypatch.setattr(sf, "_SCRATCH_LIMIT", 0)  # every file takes fresh arrays
    assert all(read_skeleton(p).equals(w) for p, w in zip(any_ntu_samples, expected))


@pytest.mark.parametrize(
    "token",
    ["-.", ".", "-", "--5", "5-", "1.2.3", "1..2", "E", "1E", "1.2E3.4", "0x1", "1_0", "nan"]
    + [".5", "-.5", "5.", "+5", "0.000000000000001", "1e5", "1E-05", "-1.5E+03", "-0", "inf"],
)
def test_fast_and_exact_paths_agree_on_odd_tokens(token):
    tokens = ["0.5"] * 300
    tokens[7] = token
    lines = ["1", "1", "1 0 0 0 0 0 0 0 0 2", "25"]
    lines += [" ".join(tokens[i : i + 12]) for i in range(0, 300, 12)]
    data = ("\r\n".join(lines) + "\r\n").encode()
    fast = sf._parse_fast(data)
    if token in ("-.", ".", "-", "--5", "5-", "1.2.3", "1..2", "E", "1E", "1.2E3.4", "0x1", "1_0"):
        assert fast is None
        message = rf"line 5: expected a number for orientationW of joint 1 .*'{re.escape(token)}'"
        with pytest.raises(FormatError, match=message):
            parse_skeleton(data, "x.skeleton")
        return
    value = float(token)
    if not np.isfinite(value):  # refused by default, read when allowed
        with pytest.raises(FormatError, match=r"line 5: expected a finite number for orient"):
            parse_skeleton(data, "x.skeleton")
    seq = parse_skeleton(data, "x.skeleton", allow_nonfinite=True)
    assert np.array_equal(seq.joints[0, 0, 7], value, equal_nan=True)
    assert np.signbit(seq.joints[0, 0, 7]) == np.signbit(value)
    if token not in ("nan", "inf", "+5"):  # rare spellings the exact path reads
        assert fast is not None and fast.equals(sf._parse_exact(data, "x"))


def test_writer_refuses_fractional_integer_fields(tmp_path):
    seq = _sequence([1])
    seq.body_info[0, 2] = 1.5  # handLeftState
    with pytest.raises(ValueError, match="handLeftState must be a whole number"):
        write_skeleton(tmp_path / "a.skeleton", seq)
    seq = _sequence([1])
    seq.joints[0, 3, 11] = 0.5
    with pytest.raises(ValueError, match="joint field trackingState"):
        write_skeleton(tmp_path / "a.skeleton", seq)
    assert not (tmp_path / "a.skeleton").exists()
