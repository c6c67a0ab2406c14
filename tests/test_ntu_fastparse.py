"""The C fast path of the NTU .skeleton reader (xmkd.ntu._fastparse) against the exact scan.

The extension only has to be exact where it accepts a file: whatever it refuses goes to the
line-by-line scan, which reads it or raises the FormatError. So every test compares, on the same
bytes, the extension's columns with the exact scan's and checks it refuses what the scan rejects
(the error messages are then the scan's, identical to the numpy path's).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from xmkd.errors import FormatError
from xmkd.ntu import SkeletonSequence, format_skeleton, parse_skeleton, read_skeleton
from xmkd.ntu import skeleton_file as sf

REPO = Path(__file__).resolve().parents[1]

if sf._fastparse is None:
    if os.environ.get("CI"):
        # CI installs with gcc and the Python headers: the extension must have been built.
        raise RuntimeError("xmkd.ntu._fastparse was not built by `pip install -e .`")
    pytest.skip(
        "the optional C extension xmkd.ntu._fastparse is not built (no C compiler at install)",
        allow_module_level=True,
    )

from xmkd.ntu import _fastparse  # noqa: E402


def _columns(data: bytes) -> SkeletonSequence | None:
    return sf._parse_fast_c(data)


def _outcome(data: bytes):
    """What the exact scan makes of ``data``: a sequence, or the error message."""
    try:
        return sf._parse_exact(data, "x.skeleton")
    except FormatError as err:
        return str(err)


def _same(a: SkeletonSequence, b: SkeletonSequence) -> bool:
    return a.equals(b) and np.array_equal(np.signbit(a.joints), np.signbit(b.joints))


def _check(data: bytes, full: bool = True) -> bool:
    """The C path agrees with the exact scan on ``data``; True when it accepted the bytes.
    ``full`` also reads the bytes through :func:`parse_skeleton` (same result or message)."""
    want = _outcome(data)
    got = _columns(data)
    if isinstance(want, str):
        assert got is None, f"C path accepted a file the exact scan rejects: {want}"
        if full:
            with pytest.raises(FormatError) as info:
                parse_skeleton(data, "x.skeleton")
            assert str(info.value) == want
        return False
    if got is not None:
        assert _same(got, want)
        assert np.array_equal(got.body_ids, want.body_ids)
    if full:
        assert _same(parse_skeleton(data, "x.skeleton"), want)
    return got is not None


@pytest.fixture
def small(any_ntu_samples):
    """The first 3 frames of the 2-body sample S001C003P008R002A058, CRLF (171 lines)."""
    path = next(p for p in any_ntu_samples if "A058" in p.name)
    lines = path.read_bytes().split(b"\r\n")
    return b"\r\n".join([b"3", *lines[1 : 1 + 3 * (1 + 2 * 27)], b""])


def test_reader_uses_the_c_path():
    assert sf.FAST_PARSER == "C"


def test_real_samples_exactly_as_the_exact_scan_and_numpy(any_ntu_samples):
    for path in any_ntu_samples:
        data = path.read_bytes()
        fast = _columns(data)
        assert fast is not None, f"{path.name} fell back to the slow scan"
        assert _same(fast, sf._parse_exact(data, path))
        assert _same(fast, sf._parse_fast(data))
        seq = read_skeleton(path)
        assert _same(seq, fast) and seq.body_ids.dtype == np.uint64
        assert seq.joints.flags.writeable and seq.joints.flags.c_contiguous


def test_line_endings_whitespace_and_empty_files(small):
    assert _check(small)
    assert _check(small.replace(b"\r\n", b"\n"))
    assert _check(small.rstrip(b"\r\n"))  # no final line break
    assert _check(small + b"\r\n \t\r\n\x0b\x0c\n")  # trailing blank lines
    assert _check(small.replace(b" ", b" \t\x0b\x0c\r"))  # every ASCII separator
    assert _check(small.replace(b"\r\n", b" \r\n", 7))  # blanks before line ends
    assert _check(b"0")
    assert _check(b"0\r\n")
    assert _check(b"3\n0\n0\n0\n")
    assert not _check(b"")
    assert not _check(b"\n")
    assert not _check(b"1\n")
    assert not _check(b"1\n0\n1\n")
    assert not _check(b"0\n\x00")


def test_counts_are_plain_digits_else_the_scan_decides(small):
    lines = small.split(b"\r\n")
    for count in (b"03", b"3.0", b"3e0", b"+3", b"-0", b"3.5", b"-3", b"99999999999999999999"):
        _check(b"\r\n".join([count, *lines[1:]]))
    for joints in (b"025", b"25.0", b"24", b"26", b"0"):
        _check(b"\r\n".join([*lines[:3], joints, *lines[4:]]))
    for bodies in (b"0", b"1", b"3", b"2.0", b"18446744073709551616"):
        _check(b"\r\n".join([lines[0], bodies, *lines[2:]]))


@pytest.mark.parametrize(
    "body_id",
    [b"0", b"007", b"18446744073709551615", b"18446744073709551616", b"99999999999999999999999"]
    + [b"-3", b"1.0", b"1e5", b"+5", b"x", b"00000000000000000000000000000000000001"],
)
def test_body_ids(small, body_id):
    lines = small.split(b"\r\n")
    lines[2] = b" ".join([body_id, *lines[2].split()[1:]])
    accepted = _check(b"\r\n".join(lines))
    if body_id.isdigit() and int(body_id) < 2**64:
        assert accepted
        assert int(read_skeleton_bytes(b"\r\n".join(lines)).body_ids[0]) == int(body_id)


def read_skeleton_bytes(data: bytes) -> SkeletonSequence:
    return parse_skeleton(data, "x.skeleton")


def _with_token(token: bytes, field: int = 7) -> bytes:
    tokens = [b"0.5"] * 300
    tokens[field] = token
    lines = [b"1", b"1", b"1 0 0 0 0 0 0 0 0 2", b"25"]
    lines += [b" ".join(tokens[i : i + 12]) for i in range(0, 300, 12)]
    return b"\r\n".join(lines) + b"\r\n"


@pytest.mark.parametrize(
    "token",
    [b"-.", b".", b"-", b"--5", b"5-", b"1.2.3", b"1..2", b"E", b"1E", b"1.2E3.4", b"0x1", b"1_0"]
    + [b"nan", b"inf", b"+5", b"1e+", b"e5", b".e5", b"1e5.", b"1\x00", b"\xff", b"\xa01"],
)
def test_tokens_the_c_path_refuses(token):
    data = _with_token(token)
    assert _fastparse.parse(data) is None
    _check(data)  # the scan reads it ("nan", "inf", "+5") or names line and token


@pytest.mark.parametrize(
    "token",
    [b"0", b"-0", b"-0.0", b"5.", b".5", b"-.5", b"007.50", b"1e5", b"1E-05", b"-7.257856E-05"]
    + [b"-1.5E+03", b"0.000000000000001", b"9007199254740993", b"9007199254740992.5"]
    + [b"12345678901234567890", b"0.1234567890123456789012", b"1e22", b"1e23", b"1e-22"]
    + [b"1e-23", b"4.9e-324", b"2.4703282292062327e-324", b"0e999"]
    + [b"1.7976931348623157e308", b"123456789012345678e-40", b"000000000000000000000001"],
)
def test_numbers_equal_float(token):
    data = _with_token(token)
    assert _check(data)
    value = _columns(data).joints[0, 0, 7]
    assert value == float(token) and np.signbit(value) == np.signbit(float(token))


@pytest.mark.parametrize("token", [b"1e309", b"-1e99999999", b"nan", b"-inf", b"Infinity"])
@pytest.mark.parametrize("field", [0, 7, 11, 299])
def test_nonfinite_values_refused_by_every_path_unless_allowed(token, field, monkeypatch):
    """A value that is or overflows to NaN/inf is refused by the C path, the numpy path and the
    scan alike (the scan names file, line and field); allow_nonfinite reads it as float()."""
    data = _with_token(token, field)
    assert _fastparse.parse(data) is None
    assert sf._parse_fast(data) is None
    line = 5 + field // 12
    with pytest.raises(FormatError, match=rf"x.skeleton, line {line}: expected a finite number"):
        parse_skeleton(data, "x.skeleton")
    monkeypatch.setattr(sf, "_fastparse", None)
    with pytest.raises(FormatError, match=rf"x.skeleton, line {line}: expected a finite number"):
        parse_skeleton(data, "x.skeleton")
    monkeypatch.undo()
    allowed = parse_skeleton(data, "x.skeleton", allow_nonfinite=True)
    value = allowed.joints.reshape(-1)[field]
    assert np.array_equal(value, float(token), equal_nan=True)
    if token[:1].isdigit() or token.startswith(b"-1"):  # the C path converts these itself
        assert _same(sf._parse_fast_c(data, allow_nonfinite=True), allowed)


def test_random_numbers_equal_float():
    """Thousands of decimal spellings around the fast conversion's limits (15-19 digits,
    exponents near +-22, subnormals) convert exactly as float() does."""
    rng = np.random.default_rng(0)
    tokens = []
    for _ in range(6000):
        digits = "".join(map(str, rng.integers(0, 10, size=int(rng.integers(1, 24)))))
        point = int(rng.integers(0, len(digits) + 1))
        text = digits[:point] + ("." if rng.random() < 0.8 else "") + digits[point:]
        if rng.random() < 0.3:
            text += f"{'eE'[int(rng.integers(2))]}{int(rng.integers(-40, 40)):+d}"
        if rng.random() < 0.5:
            text = "-" + text
        tokens.append(text)
    tokens += [repr(float(x)) for x in rng.normal(scale=10.0 ** rng.integers(-30, 30, 3000))]
    tokens += [f"{x:.7g}" for x in rng.normal(scale=500, size=3000)]
    tokens += ["0"] * (-len(tokens) % 300)
    bodies = len(tokens) // 300
    lines = [str(bodies).encode()]
    for b in range(bodies):
        lines += [b"1", b"%d 0 0 0 0 0 0 -0.5 0.25 2" % b, b"25"]
        chunk = tokens[b * 300 : (b + 1) * 300]
        lines += [" ".join(chunk[i : i + 12]).encode() for i in range(0, 300, 12)]
    data = b"\n".join(lines)
    seq = _columns(data)
    assert seq is not None
    want = np.array([float(t) for t in tokens])
    got = seq.joints.reshape(-1)
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
    assert _same(seq, sf._parse_exact(data, "x"))


def test_many_bodies_zero_body_frames_and_roundtrip():
    rng = np.random.default_rng(2)
    counts = [0, 5, 1, 0, 0, 7, 2, 0]
    total = sum(counts)
    joints = np.round(rng.normal(size=(total, 25, 12)), 7)
    joints[..., 11] = rng.integers(0, 3, size=(total, 25))
    info = np.round(rng.normal(size=(total, 9)), 7)
    info[:, [0, 1, 2, 3, 4, 5, 8]] = rng.integers(0, 3, size=(total, 7))
    ids = rng.integers(0, 2**63, size=total).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    seq = SkeletonSequence.from_arrays(counts, ids, joints, info)
    for newline in ("\r\n", "\n"):
        data = format_skeleton(seq, newline).encode()
        assert _check(data)
        assert _same(_columns(data), seq) and np.array_equal(_columns(data).body_ids, ids)


def test_malformed_variants_give_the_scans_errors(small):
    """Truncations, wrong counts, edited bytes, dropped and doubled lines: whenever the scan
    rejects a variant the C path refuses it too (so the FormatError is the scan's), and whenever
    it accepts one the columns are the scan's."""
    rng = np.random.default_rng(1)
    body = small.split(b"\r\n")[2:29]  # the first body of frame 1
    lines = [b"2", b"1", *body, b"0"]  # 2 frames, 1 and 0 bodies: the scan is quick
    small = b"\r\n".join([*lines, b""])
    variants = [small[:cut] for cut in range(0, len(small), 41)]
    variants += [b"\r\n".join(lines[:n]) for n in range(len(lines))]
    variants += [b"\r\n".join(lines[:n]) + b"\r\n" for n in range(0, len(lines), 3)]
    alphabet = b" \n\r\t-.eE+0159x\x00\x0b"
    for _ in range(400):
        at = int(rng.integers(len(small)))
        byte = alphabet[int(rng.integers(len(alphabet)))]
        variants.append(small[:at] + bytes([byte]) + small[at + 1 :])  # replaced
        variants.append(small[:at] + bytes([byte]) + small[at:])  # inserted
        variants.append(small[:at] + small[at + 1 :])  # deleted
    for n in range(len(lines)):
        variants.append(b"\r\n".join(lines[:n] + lines[n + 1 :]))  # line dropped
        variants.append(b"\r\n".join(lines[: n + 1] + lines[n:]))  # line doubled
        variants.append(b"\r\n".join([*lines[:n], b"2", *lines[n + 1 :]]))  # a count put in
    accepted = sum(_check(v, full=False) for v in variants)
    # Most edits keep the structure (a digit for a digit) or break it; both kinds occur.
    assert 0 < accepted < len(variants)


def test_errors_identical_with_and_without_the_extension(sample_errors, monkeypatch):
    with_c = sample_errors()
    monkeypatch.setattr(sf, "_fastparse", None)
    assert sample_errors() == with_c


@pytest.fixture
def sample_errors(small, tmp_path):
    """Reads a set of malformed files with the reader as configured: the messages."""
    lines = small.split(b"\r\n")

    def run() -> list[str]:
        bad = [
            small[: len(small) // 2],
            b"\r\n".join([*lines[:7], b"1 2 3", *lines[8:]]),
            b"\r\n".join([*lines[:9], lines[9].replace(b" ", b" abc ", 1), *lines[10:]]),
            b"\r\n".join([lines[0], b"2.5", *lines[2:]]),
            small + b"junk\r\n",
        ]
        messages = []
        for i, data in enumerate(bad):
            path = tmp_path / f"bad{i}.skeleton"
            path.write_bytes(data)
            with pytest.raises(FormatError) as info:
                read_skeleton(path)
            messages.append(str(info.value))
        return messages

    return run


def test_threads_share_the_parser(any_ntu_samples):
    """The extension releases the GIL while parsing: concurrent reads stay exact."""
    datas = [p.read_bytes() for p in any_ntu_samples]
    # Tokens the C path hands to Python's conversion (it takes the GIL back for them).
    datas += [_with_token(b"12345678901234567890123"), _with_token(b"-1.5e-300")]
    expected = [sf._parse_exact(d, "x") for d in datas]
    results = []

    def work():
        for data, want in zip(datas * 2, expected * 2):
            results.append(_same(parse_skeleton(data), want))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 3 * 2 * len(datas)


def test_bytes_like_input_and_type_check(small):
    want = _outcome(small)
    assert _same(parse_skeleton(bytearray(small)), want)
    assert _same(parse_skeleton(memoryview(small)), want)
    with pytest.raises(TypeError):
        _fastparse.parse(bytearray(small))


def test_bench_reports_the_path(any_ntu_samples, tmp_path, capsys):
    path = REPO / "bench" / "bench_ntu_reader.py"
    spec = importlib.util.spec_from_file_location("bench_ntu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / any_ntu_samples[0].name).write_bytes(any_ntu_samples[0].read_bytes())
    assert bench.main(["--dir", str(tmp_path), "--repeat", "1"]) == 0
    assert "fast path: C" in capsys.readouterr().out
