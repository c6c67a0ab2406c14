"""NTU RGB+D ``.skeleton`` text files: a fast exact reader, a writer, and the columnar sequence.

The format (shahroudy/NTURGB-D ``read_skeleton_file.m``): line 1 is the frame count; per frame a
line with the body count (may be 0); per body a line of 10 fields (the 64-bit body ID and the 9
fields of :data:`BODY_INFO_FIELDS`), a line with the joint count (25) and 25 lines of the 12
fields of :data:`JOINT_FIELDS`. Line endings are CRLF in the official release and LF in some copies.

Reading is fast: the numbers of the whole file are tokenised and converted with vectorised numpy
code (exactly: every value equals what Python's ``float()`` gives for its text), the line
structure is walked per frame using per-line token counts, and everything is validated in bulk.
Only when that validation fails does a slow line-by-line scan run, to name the file, the line and
what was expected in a :class:`~xmkd.errors.FormatError`. Body IDs exceed float64 precision, so
they are parsed from their text as integers.

Where the package was installed with a C compiler at hand, the optional extension
``xmkd.ntu._fastparse`` replaces the numpy pass: one exact pass over the bytes in C, with the
same fallback to the line-by-line scan. :data:`FAST_PARSER` says which fast path is in use.

Non-finite values (``nan``, ``inf``, ``1e999``) are refused by default: no sensor writes them and
they turn every loss they reach into NaN. Both fast paths hand a file holding one to the exact
scan, which names the file, the line and the field; ``allow_nonfinite=True`` reads them as they
are. Only regular files of at most :data:`MAX_FILE_BYTES` are read: a FIFO would block the reader
forever and a link to ``/dev/zero`` would fill the memory (see :func:`check_skeleton_file`).
"""

from __future__ import annotations

import math
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xmkd.errors import FormatError

try:  # built from _fastparse.c at install time when a C compiler was available (optional)
    from xmkd.ntu import _fastparse
except ImportError:
    _fastparse = None

__all__ = [
    "BODY_INFO_FIELDS",
    "JOINT_FIELDS",
    "NUM_JOINTS",
    "FrameBodies",
    "SkeletonSequence",
    "read_skeleton",
    "write_skeleton",
    "parse_skeleton",
    "format_skeleton",
    "check_skeleton_file",
    "FAST_PARSER",
    "MAX_FILE_BYTES",
]

#: The largest ``.skeleton`` file read. The biggest files of NTU RGB+D 120 are a few MB (a
#: 300-frame, 4-body take is about 2.4 MB); 64 MiB leaves room for hour-long recordings of one
#: body while refusing a runaway or device file before it is read into memory.
MAX_FILE_BYTES = 64 << 20

# Which fast path reads files: "C" (the compiled extension) or "numpy" (no compiler at install).
FAST_PARSER = "C" if _fastparse is not None else "numpy"

NUM_JOINTS = 25
# The 9 per-body fields after the body ID, in file order (spelling as in the official reader).
BODY_INFO_FIELDS = (
    "clipedEdges",
    "handLeftConfidence",
    "handLeftState",
    "handRightConfidence",
    "handRightState",
    "isResticted",
    "leanX",
    "leanY",
    "trackingState",
)
# The 12 per-joint fields in file order.
JOINT_FIELDS = (
    "x",
    "y",
    "z",
    "depthX",
    "depthY",
    "colorX",
    "colorY",
    "orientationW",
    "orientationX",
    "orientationY",
    "orientationZ",
    "trackingState",
)
_INFO_TOKENS = 1 + len(BODY_INFO_FIELDS)
_JOINT_TOKENS = len(JOINT_FIELDS)
_BODY_LINES = 2 + NUM_JOINTS  # info line, joint count line, joint lines
# Body info written by :meth:`SkeletonSequence.from_arrays` when the caller has none: nothing
# clipped, hands unknown, not restricted, no lean, body tracked (trackingState 2).
_DEFAULT_BODY_INFO = np.array([0, 0, 0, 0, 0, 0, 0, 0, 2], dtype=np.float64)


class FrameBodies(NamedTuple):
    """The bodies of one frame: views into the sequence's columns."""

    body_ids: np.ndarray  # (n,) uint64
    body_info: np.ndarray  # (n, 9) float64
    joints: np.ndarray  # (n, 25, 12) float64


@dataclass(eq=False)
class SkeletonSequence:
    """One NTU skeleton file, columnar: bodies of all frames stacked in file order.

    ``body_counts[f]`` bodies belong to frame ``f``; they are rows
    ``frame_offsets[f]:frame_offsets[f + 1]`` of ``body_ids``, ``body_info`` and ``joints``.
    ``body_info`` columns follow :data:`BODY_INFO_FIELDS`, ``joints`` columns follow
    :data:`JOINT_FIELDS` (x y z in metres, Kinect v2 camera space).
    """

    body_counts: np.ndarray  # (F,) int64
    body_ids: np.ndarray  # (B,) uint64
    body_info: np.ndarray  # (B, 9) float64
    joints: np.ndarray  # (B, 25, 12) float64

    def __post_init__(self) -> None:
        self.body_counts = np.asarray(self.body_counts, dtype=np.int64).reshape(-1)
        self.body_ids = np.asarray(self.body_ids, dtype=np.uint64).reshape(-1)
        self.body_info = np.asarray(self.body_info, dtype=np.float64)
        self.joints = np.asarray(self.joints, dtype=np.float64)
        total = int(self.body_counts.sum())
        if (self.body_counts < 0).any():
            raise ValueError("body_counts must not be negative")
        if self.body_ids.shape != (total,):
            raise ValueError(f"body_ids has {self.body_ids.size} entries, body_counts sum {total}")
        if self.body_info.shape != (total, len(BODY_INFO_FIELDS)):
            raise ValueError(f"body_info must be ({total}, 9), got {self.body_info.shape}")
        if self.joints.shape != (total, NUM_JOINTS, _JOINT_TOKENS):
            raise ValueError(f"joints must be ({total}, 25, 12), got {self.joints.shape}")

    @classmethod
    def from_arrays(
        cls,
        body_counts: np.ndarray,
        body_ids: np.ndarray,
        joints: np.ndarray,
        body_info: np.ndarray | None = None,
    ) -> SkeletonSequence:
        """Build a sequence for writing.

        ``joints`` is (B, 25, 12) with every field, or (B, 25, 3) positions only (pixel
        coordinates and orientations are then 0 and every joint's trackingState is 2).
        ``body_info`` (B, 9) defaults to: nothing clipped, hand states unknown, no lean, body
        tracked (trackingState 2).
        """
        counts = np.asarray(body_counts, dtype=np.int64).reshape(-1)
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim == 3 and joints.shape[1:] == (NUM_JOINTS, 3):
            full = np.zeros((joints.shape[0], NUM_JOINTS, _JOINT_TOKENS))
            full[..., :3] = joints
            full[..., 11] = 2.0
            joints = full
        if body_info is None:
            body_info = np.tile(_DEFAULT_BODY_INFO, (joints.shape[0], 1))
        return cls(counts, np.asarray(body_ids, dtype=np.uint64), body_info, joints)

    @property
    def num_frames(self) -> int:
        return int(self.body_counts.shape[0])

    @property
    def num_bodies(self) -> int:
        """Total body entries over all frames (B)."""
        return int(self.body_ids.shape[0])

    @property
    def frame_offsets(self) -> np.ndarray:
        """(F + 1,) int64: bodies of frame f are rows ``frame_offsets[f]:frame_offsets[f+1]``."""
        offsets = np.zeros(self.num_frames + 1, dtype=np.int64)
        np.cumsum(self.body_counts, out=offsets[1:])
        return offsets

    @property
    def body_frames(self) -> np.ndarray:
        """(B,) int64: the frame index of each body entry."""
        return np.repeat(np.arange(self.num_frames, dtype=np.int64), self.body_counts)

    def frame(self, f: int) -> FrameBodies:
        """The bodies of frame ``f`` (0-based) as views."""
        if not -self.num_frames <= f < self.num_frames:
            raise IndexError(f"frame {f} out of range for {self.num_frames} frames")
        f %= self.num_frames
        start = int(self.body_counts[:f].sum())
        rows = slice(start, start + int(self.body_counts[f]))
        return FrameBodies(self.body_ids[rows], self.body_info[rows], self.joints[rows])

    def equals(self, other: SkeletonSequence) -> bool:
        """True when every field of both sequences is identical (NaNs compare equal)."""
        return (
            np.array_equal(self.body_counts, other.body_counts)
            and np.array_equal(self.body_ids, other.body_ids)
            and np.array_equal(self.body_info, other.body_info, equal_nan=True)
            and np.array_equal(self.joints, other.joints, equal_nan=True)
        )


# ---------------------------------------------------------------------------------------------
# Reading


_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _refuse_mode(path: Path, info: os.stat_result) -> None:
    """Raise the FormatError for anything but a regular file of at most MAX_FILE_BYTES."""
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_TYPES.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise FormatError(path, f"is {kind}, not a regular .skeleton file; it is not read")
    if info.st_size > MAX_FILE_BYTES:
        raise FormatError(
            path,
            f"is {info.st_size / 2**20:.0f} MiB, larger than any .skeleton file xmkd reads "
            f"({MAX_FILE_BYTES >> 20} MiB); it is not read",
        )


def check_skeleton_file(path: str | Path) -> Path:
    """``path`` if it is a regular file (a symlink to one is fine) of at most
    :data:`MAX_FILE_BYTES`; else a FormatError naming it. Only stats the file, never opens it
    (opening a FIFO blocks), so file discovery can sort out bad entries cheaply."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise FormatError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    _refuse_mode(path, info)
    return path


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, checked on the open descriptor
    (no window between check and read); opened non-blocking so a FIFO cannot hang the open."""
    check_skeleton_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FormatError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        _refuse_mode(path, os.fstat(fd))
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:  # a file growing while read stops at the cap
            chunk = os.read(fd, min(1 << 22, MAX_FILE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FormatError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        raise FormatError(
            path, f"grew beyond {MAX_FILE_BYTES >> 20} MiB while being read; it is not read"
        )
    return b"".join(chunks)


def read_skeleton(path: str | Path, allow_nonfinite: bool = False) -> SkeletonSequence:
    """Read an NTU ``.skeleton`` file exactly (every field; CRLF or LF).

    Raises :class:`~xmkd.errors.FormatError` naming the file, the 1-based line and what was
    expected when the file is truncated or malformed, holds a non-finite value (unless
    ``allow_nonfinite``), is not a regular file or is larger than :data:`MAX_FILE_BYTES`.
    """
    path = Path(path)
    return parse_skeleton(_read_regular(path), path, allow_nonfinite=allow_nonfinite)


def parse_skeleton(
    data: bytes, path: str | Path = "<bytes>", allow_nonfinite: bool = False
) -> SkeletonSequence:
    """Parse the bytes of a ``.skeleton`` file; ``path`` only names it in errors."""
    if _fastparse is not None:
        seq = _parse_fast_c(data, allow_nonfinite)
    else:
        seq = _parse_fast(data, allow_nonfinite)
    if seq is None:
        # Something did not validate: the exact scan names the line (or, if the fast path was
        # merely too strict, e.g. a number spelled "+5" or "nan", reads the file correctly).
        seq = _parse_exact(data, path, allow_nonfinite)
    return seq


# Fast paths ----------------------------------------------------------------------------------


def _parse_fast_c(data: bytes, allow_nonfinite: bool = False) -> SkeletonSequence | None:
    """The C extension's one-pass parse; None when it does not accept the file."""
    columns = _fastparse.parse(bytes(data), allow_nonfinite)
    if columns is None:
        return None
    counts, ids, info, joints = columns
    return SkeletonSequence(
        np.frombuffer(counts, dtype=np.int64),
        np.frombuffer(ids, dtype=np.uint64),
        np.frombuffer(info, dtype=np.float64).reshape(-1, len(BODY_INFO_FIELDS)),
        np.frombuffer(joints, dtype=np.float64).reshape(-1, NUM_JOINTS, _JOINT_TOKENS),
    )


# The numpy fast path (used without the extension).
#
# Each token is converted from the 16 bytes that end at its last character (one gather of 16-byte
# rows) with SWAR integer arithmetic on the row's two 64-bit words. A token of at most 15
# characters has at most 15 digits, so its integer mantissa M < 10**15 < 2**53 is exact and
# M / 10**decimals is the correctly rounded double: the one strtod / float() return (Clinger's fast
# path). Longer tokens (body IDs) and tokens with an exponent (real files hold a few values like
# -7.257856E-05) go through float() one by one. No BLAS (its threads stall on a busy machine) and
# no np.fmod (slow for large quotients). Intermediate arrays live in per-thread scratch buffers
# that are reused between files: fresh large arrays cost a page fault per 4 KiB.

_WINDOW = 16
_MAX_BULK = _WINDOW - 1
_U64 = np.uint64
_PAIRS = _U64(0x000000FF000000FF)
_MUL_HIGH = _U64(100 + (1000000 << 32))
_MUL_LOW = _U64(1 + (10000 << 32))
# _TOKEN_BYTES[n]: masks for the two words of a 16-byte row keeping its last n bytes.
_TOKEN_BYTES = np.array(
    [[(((1 << (8 * n)) - 1) << (8 * (16 - n))) >> shift & (2**64 - 1) for shift in (0, 64)]
     for n in range(17)],
    dtype=np.uint64,
)  # fmt: skip
_POW10 = 10.0 ** np.arange(_WINDOW + 1)
# Decimals after a '.' at window byte J, by the frexp exponent 8J + 1 of its bit; no '.' (exponent
# 0) gives more decimals than any token has characters.
_DECIMALS = np.array(
    [_WINDOW + 1] + [_WINDOW - 1 - (e - 1) // 8 for e in range(1, 8 * _WINDOW + 2)]
)
_SCRATCH_LIMIT = 2 << 20  # bigger files use fresh arrays: the cache holds ~25 bytes per file byte
_scratch_local = threading.local()


class _Scratch:
    """Named reusable arrays of this thread, grown on demand (views of the requested size)."""

    def __init__(self, reuse: bool):
        self.reuse = reuse
        self.store = getattr(_scratch_local, "store", None) if reuse else None
        if self.store is None:
            self.store = {}
            if reuse:
                _scratch_local.store = self.store

    def __call__(self, name: str, shape: int | tuple[int, ...], dtype: type) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else shape
        count = math.prod(shape)
        held = self.store.get(name)
        if held is None or held.size < count or held.dtype != dtype:
            held = np.empty(max(count, 1024), dtype=dtype)
            self.store[name] = held
        return held[:count].reshape(shape)


def _parse_fast(data: bytes, allow_nonfinite: bool = False) -> SkeletonSequence | None:
    """Vectorised parse; None when anything does not validate (the exact scan then explains)."""
    size = len(data)
    if size == 0:
        return None
    tmp = _Scratch(reuse=size <= _SCRATCH_LIMIT)
    u = np.frombuffer(data, dtype=np.uint8)
    flag = tmp("flag", size, bool)  # per-byte scratch for the counts below
    # Tokens: runs of non-whitespace.
    ws = np.less_equal(u, 32, out=tmp("ws", size, bool))
    edges = tmp("edges", size + 1, bool)
    edges[0] = not ws[0]
    edges[-1] = not ws[-1]
    np.not_equal(ws[1:], ws[:-1], out=edges[1:-1])
    bounds = np.flatnonzero(edges)
    starts, ends = bounds[0::2], bounds[1::2]
    count = starts.size
    lengths = np.subtract(ends, starts, out=tmp("lengths", count, np.int64))
    # Byte codes: digits 0..9, '-' 253, '.' 254; 16 bytes in front so every window exists.
    buffer = tmp("buffer", size + _WINDOW, np.uint8)
    buffer[:_WINDOW] = 32
    codes = np.subtract(u, np.uint8(48), out=buffer[_WINDOW:])
    # Alphabet: bytes <= 32 separate tokens (only tab and line breaks may be control characters);
    # tokens with letters (exponents such as 1.5E-05) go to float(); in the others every byte is a
    # digit except a leading '-' and one '.', which is checked by counting further below.
    slow = np.greater(lengths, _MAX_BULK, out=tmp("slow", count, bool))
    letters = np.flatnonzero(np.greater(u, 57, out=flag))
    if letters.size:
        slow[np.searchsorted(starts, letters, side="right") - 1] = True
    digit_total = np.count_nonzero(np.less(codes, 10, out=flag))
    newlines = np.flatnonzero(np.equal(u, 10, out=flag))
    controls = np.count_nonzero(np.less(u, 32, out=flag)) - newlines.size
    if controls and controls != np.count_nonzero(np.equal(u, 13, out=flag)):
        if controls != np.count_nonzero((u == 13) | (u == 9)):
            return None  # control characters other than tab and line breaks
    # Row t: the 16 bytes ending at token t's last byte; its last `length` bytes are the token.
    source = np.ndarray((size + 1,), dtype=f"V{_WINDOW}", buffer=buffer, strides=(1,))
    rows = np.take(source, ends, out=tmp("rows", count, f"V{_WINDOW}"), mode="clip")
    window = rows.view(np.uint8).reshape(count, _WINDOW)
    dots = np.equal(window, 254, out=tmp("dots", (count, _WINDOW), bool))
    digit = np.less(window, 10, out=tmp("digit", (count, _WINDOW), bool))
    np.multiply(window, digit, out=window)
    # SWAR on the two little-endian words of each row (first digit in the lowest byte): keep the
    # token's bytes, byte pairs -> 2-digit numbers, those -> one 8-digit number (high 32 bits).
    words = window.view("<u8")
    index = np.minimum(lengths, _WINDOW, out=tmp("index", count, np.int64))
    keep = np.take(_TOKEN_BYTES, index, axis=0, out=tmp("keep", (count, 2), _U64), mode="clip")
    np.bitwise_and(words, keep, out=words)
    pairs = np.multiply(words, _U64(10), out=keep)
    pairs += np.right_shift(words, _U64(8), out=words)
    high = np.bitwise_and(pairs, _PAIRS, out=words)
    high *= _MUL_HIGH
    np.right_shift(pairs, _U64(16), out=pairs)
    pairs &= _PAIRS
    pairs *= _MUL_LOW
    pairs += high
    eight = pairs.view("<u4")[:, 1::2]
    mantissa = np.multiply(eight[:, 0], 1e8, out=tmp("mantissa", count, np.float64))
    mantissa += eight[:, 1]  # a '.' counts as a 0 digit
    # The last '.' in the window: as one 128-bit number (bytes 8-15 high), window byte J sets bit
    # 8J, whose frexp exponent is 8J + 1. It is the token's if fewer than `length` bytes follow.
    # (A token with two points fails the count of points below.)
    dot_words = dots.view(np.uint8).view("<u8")
    dot_code = np.multiply(dot_words[:, 1], 2.0**64, out=tmp("dot_code", count, np.float64))
    dot_code += dot_words[:, 0]
    exponent = tmp("exponent", count, np.int32)
    np.frexp(dot_code, out=(tmp("fraction", count, np.float64), exponent))
    decimals = np.take(_DECIMALS, exponent, out=tmp("decimals", count, np.int64), mode="clip")
    has_dot = np.less(decimals, lengths, out=tmp("has_dot", count, bool))
    decimals *= has_dot
    scale = np.take(_POW10, decimals, out=tmp("scale", count, np.float64), mode="clip")
    # The value: the digits, with the point's 0 digit, are M = A*10**(k+1) + B (B < 10**k the k
    # decimals), the number is A + B/10**k = (M + 9B) / 10**(k+1): an exact integer (< 2**53)
    # divided once. B = M mod 10**k from an exact float division; the rounded quotient can only
    # be one too large, and B then comes out negative. No point: k = 0, B = 0, divide by 1.
    tail = np.divide(mantissa, scale, out=tmp("tail", count, np.float64))
    np.floor(tail, out=tail)
    tail *= scale
    np.subtract(mantissa, tail, out=tail)
    negative_tail = np.less(tail, 0, out=tmp("flag_t", count, bool))
    np.add(tail, scale, out=tail, where=negative_tail)
    tail *= 9.0
    tail += mantissa
    decimals += has_dot
    divisor = np.take(_POW10, decimals, out=scale, mode="clip")
    values = np.divide(tail, divisor)  # returned: a fresh array
    first_chars = np.take(u, starts, out=tmp("first", count, np.uint8), mode="clip")
    negative = np.equal(first_chars, 45, out=tmp("negative", count, bool))
    sign = np.multiply(negative, -2.0, out=tmp("sign", count, np.float64))
    sign += 1.0
    values *= sign
    # Every non-digit byte of a token is its leading '-' or its (last) '.', or lies in a slow token
    # (whose text float() checks): counted.
    slow_tokens = np.flatnonzero(slow)
    texts = [data[a:b] for a, b in zip(starts[slow_tokens].tolist(), ends[slow_tokens].tolist())]
    slow_symbols = len(b"".join(texts).translate(None, b"0123456789"))
    symbols = np.count_nonzero(negative) + np.count_nonzero(has_dot)
    symbols -= np.count_nonzero(negative[slow_tokens]) + np.count_nonzero(has_dot[slow_tokens])
    if symbols + slow_symbols != int(lengths.sum()) - digit_total:
        return None
    digits = np.subtract(lengths, has_dot, out=tmp("digits", count, np.int64))
    digits -= negative
    if not digits.all():  # "-", ".", "-." (slow tokens are long or hold an 'E')
        return None
    ids = {}  # long all-digit tokens (body IDs): _assemble reads them exactly as integers
    for t, text in zip(slow_tokens.tolist(), texts):
        if text.isdigit():
            ids[t] = text
        try:
            values[t] = float(text)
        except ValueError:
            return None
        # Bulk-converted tokens are short digit strings, always finite; "nan", "inf" and
        # "1e999" come here, and the exact scan names them when they are refused.
        if not allow_nonfinite and not math.isfinite(values[t]):
            return None
        if b"_" in text:  # float() allows digit separators, the format does not
            return None
    return _assemble(data, values, starts, ends, ids, newlines)


def _assemble(
    data: bytes,
    values: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    digit_tokens: dict[int, bytes],
    newlines: np.ndarray,
) -> SkeletonSequence | None:
    """Walk the frame structure over per-line token counts and gather the columns.

    ``digit_tokens`` holds the text of the all-digit tokens too long for the bulk conversion
    (body IDs), whose float values are not exact.
    """
    first_token = np.empty(newlines.size + 2, dtype=np.int64)
    first_token[0] = 0
    first_token[1:-1] = np.searchsorted(starts, newlines)
    first_token[-1] = starts.size
    per_line = np.diff(first_token)
    num_lines = per_line.size
    tokens_in = per_line.tolist()
    first = first_token.tolist()
    if tokens_in[0] != 1:
        return None
    frames = values[0]
    if not (0 <= frames == math.floor(frames)):
        return None
    frame_lines = []
    body_counts = []
    line = 1
    for _ in range(int(frames)):
        if line >= num_lines or tokens_in[line] != 1:
            return None
        bodies = values[first[line]]
        if not (0 <= bodies == math.floor(bodies)):
            return None
        frame_lines.append(line)
        body_counts.append(int(bodies))
        line += 1 + _BODY_LINES * int(bodies)
    if line > num_lines or per_line[line:].any():
        return None  # truncated, or data after the last frame
    counts = np.array(body_counts, dtype=np.int64)
    # Info line of every body: after its frame's count line, 27 lines per earlier body.
    frame_of_body = np.repeat(np.arange(counts.size), counts)
    index_in_frame = np.arange(frame_of_body.size) - np.repeat(np.cumsum(counts) - counts, counts)
    info_lines = np.array(frame_lines, dtype=np.int64)[frame_of_body] + 1
    info_lines += _BODY_LINES * index_in_frame
    joint_lines = info_lines[:, None] + 2 + np.arange(NUM_JOINTS)
    if not (
        (per_line[info_lines] == _INFO_TOKENS).all()
        and (per_line[info_lines + 1] == 1).all()
        and (values[first_token[info_lines + 1]] == NUM_JOINTS).all()
        and (per_line[joint_lines] == _JOINT_TOKENS).all()
    ):
        return None
    info_tokens = first_token[info_lines]
    ids = []
    for t in info_tokens.tolist():
        text = digit_tokens.get(t)
        if text is None:  # a short ID
            text = data[starts[t] : ends[t]]
        if not text.isdigit() or len(text) > 20 or int(text) >= 1 << 64:
            return None
        ids.append(int(text))
    body_info = values[info_tokens[:, None] + np.arange(1, _INFO_TOKENS)]
    joint_tokens = first_token[joint_lines[:, 0]]
    joints = values[joint_tokens[:, None] + np.arange(NUM_JOINTS * _JOINT_TOKENS)]
    return SkeletonSequence(
        counts,
        np.array(ids, dtype=np.uint64),
        body_info.reshape(-1, len(BODY_INFO_FIELDS)),
        joints.reshape(-1, NUM_JOINTS, _JOINT_TOKENS),
    )


# Exact scan (error reporting) ------------------------------------------------------------------


class _Lines:
    """Line-by-line cursor over the file's bytes that builds the error messages (tokens are
    separated by ASCII whitespace, as for the fast path)."""

    def __init__(self, data: bytes, path: str | Path, allow_nonfinite: bool = False):
        self.allow_nonfinite = allow_nonfinite
        self.lines = data.split(b"\n")
        if self.lines and self.lines[-1] == b"":
            self.lines.pop()  # the final line break ends the last line, it starts none
        self.path = path
        self.index = 0  # 0-based index of the next line

    def error(self, message: str, line: int | None = None) -> FormatError:
        return FormatError(self.path, message, line=line if line is not None else self.index)

    def take(self, what: str, expected: int) -> list[bytes]:
        """The tokens of the next line, which must hold ``expected`` of them."""
        if self.index >= len(self.lines):
            raise self.error(
                f"the file ends after {len(self.lines)} lines, but {what} should follow "
                f"({expected} number{'s' if expected != 1 else ''}); the file is truncated",
                line=len(self.lines) + 1,
            )
        tokens = self.lines[self.index].split()
        self.index += 1
        if len(tokens) != expected:
            found = _quote_line(self.lines[self.index - 1]) if len(tokens) == 0 else len(tokens)
            raise self.error(
                f"expected {expected} numbers for {what}, found {found}"
                if expected != 1
                else f"expected one number for {what}, found {found}"
            )
        return tokens

    def number(self, token: bytes, what: str, finite: bool = True) -> float:
        try:
            value = float(token)
        except ValueError:
            value = None
        if value is None or b"_" in token:  # float() allows digit separators, the format not
            raise self.error(f"expected a number for {what}, found {_quote(token)}")
        if finite and not self.allow_nonfinite and not math.isfinite(value):
            raise self.error(
                f"expected a finite number for {what}, found {_quote(token)} (refused by "
                "default; prepare-ntu --allow-nonfinite accepts such values)"
            )
        return value

    def whole(self, token: bytes, what: str) -> int:
        value = self.number(token, what, finite=False)
        if not math.isfinite(value) or value < 0 or value != math.floor(value):
            raise self.error(f"expected a whole number >= 0 for {what}, found {_quote(token)}")
        return int(value)


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


#: Longest token or line quoted whole in an error message; longer ones are cut (a corrupt file
#: can hold a 50 MB "token", which would otherwise become a 50 MB message and manifest entry).
QUOTE_LIMIT = 40


def _quote(raw: bytes) -> str:
    """``raw`` quoted for an error message, cut after QUOTE_LIMIT characters."""
    if len(raw) <= QUOTE_LIMIT:
        return repr(_text(raw))
    return f"{_text(raw[:QUOTE_LIMIT])!r}... ({len(raw)} characters)"


def _quote_line(line: bytes) -> str:
    return "an empty line" if not line.strip() else _quote(line.strip())


def _parse_exact(data: bytes, path: str | Path, allow_nonfinite: bool = False) -> SkeletonSequence:
    """Line-by-line parse that raises a FormatError at the first problem."""
    cur = _Lines(data, path, allow_nonfinite)
    frames = cur.whole(cur.take("the frame count", 1)[0], "the frame count")
    counts, ids, infos, joints = [], [], [], []
    for f in range(1, frames + 1):
        what = f"the body count of frame {f}"
        bodies = cur.whole(cur.take(what, 1)[0], what)
        counts.append(bodies)
        for b in range(1, bodies + 1):
            where = f"body {b} in frame {f}"
            tokens = cur.take(f"the body ID and the 9 body fields of {where}", _INFO_TOKENS)
            if not tokens[0].isdigit() or int(tokens[0]) >= 1 << 64:
                raise cur.error(
                    f"expected the body ID of {where} (a whole number below 2**64), "
                    f"found {_quote(tokens[0])}"
                )
            ids.append(int(tokens[0]))
            infos.append(
                [
                    cur.number(tok, f"{name} of {where}")
                    for tok, name in zip(tokens[1:], BODY_INFO_FIELDS)
                ]
            )
            what = f"the joint count of {where}"
            num_joints = cur.whole(cur.take(what, 1)[0], what)
            if num_joints != NUM_JOINTS:
                raise cur.error(f"expected {NUM_JOINTS} as {what}, found {num_joints}")
            for j in range(1, NUM_JOINTS + 1):
                what = f"joint {j} of {where}"
                tokens = cur.take(what, _JOINT_TOKENS)
                joints.append(
                    [
                        cur.number(tok, f"{name} of {what}")
                        for tok, name in zip(tokens, JOINT_FIELDS)
                    ]
                )
    for extra in range(cur.index, len(cur.lines)):
        if cur.lines[extra].strip():
            raise cur.error(
                f"unexpected data after the last of the {frames} frames given in line 1: "
                f"{_quote_line(cur.lines[extra])}",
                line=extra + 1,
            )
    return SkeletonSequence(
        np.array(counts, dtype=np.int64),
        np.array(ids, dtype=np.uint64),
        np.array(infos, dtype=np.float64).reshape(-1, len(BODY_INFO_FIELDS)),
        np.array(joints, dtype=np.float64).reshape(-1, NUM_JOINTS, _JOINT_TOKENS),
    )


# ---------------------------------------------------------------------------------------------
# Writing


def _number(value: float) -> str:
    """Shortest text that reads back as the same double; whole numbers without a decimal point."""
    text = repr(value)
    if text.endswith(".0"):
        return text[:-2]
    # Exponents as the original files write them (e.g. -7.257856E-05).
    return text.upper() if "e" in text else text


# Fields the official MATLAB reader scans with %d: they must be whole numbers.
_WHOLE_INFO = [BODY_INFO_FIELDS.index(f) for f in BODY_INFO_FIELDS if f not in ("leanX", "leanY")]


def format_skeleton(seq: SkeletonSequence, newline: str = "\r\n") -> str:
    """The ``.skeleton`` text of ``seq`` (CRLF by default, like the official release).

    Raises ValueError when a field the official reader reads as an integer (the body fields other
    than leanX/leanY, the joints' trackingState) is not a whole number.
    """
    for columns, fields, names in (
        (seq.body_info[:, _WHOLE_INFO], [BODY_INFO_FIELDS[i] for i in _WHOLE_INFO], "body"),
        (seq.joints[:, :, 11:], ["trackingState"], "joint"),
    ):
        bad = columns != np.floor(columns)
        if bad.any():
            field = fields[np.argwhere(bad)[0][-1]]
            raise ValueError(
                f"{names} field {field} must be a whole number (the official reader "
                "reads it as an integer)"
            )
    fmt = _number
    out = [str(seq.num_frames)]
    infos = seq.body_info.tolist()
    joints = seq.joints.tolist()
    ids = seq.body_ids.tolist()
    row = 0
    for bodies in seq.body_counts.tolist():
        out.append(str(bodies))
        for _ in range(bodies):
            out.append(" ".join([str(ids[row]), *map(fmt, infos[row])]))
            out.append(str(NUM_JOINTS))
            out.extend(" ".join(map(fmt, joint)) for joint in joints[row])
            row += 1
    out.append("")
    return newline.join(out)


def write_skeleton(path: str | Path, seq: SkeletonSequence, newline: str = "\r\n") -> None:
    """Write ``seq`` as an NTU ``.skeleton`` file readable by the official and st-gcn readers.

    Numbers are written as the shortest decimal that reads back to the same double, whole
    numbers without a decimal point (trackingState ``2``, orientation ``0``), so
    ``read_skeleton(written)`` equals ``seq`` exactly.
    """
    if newline not in ("\r\n", "\n"):
        raise ValueError("newline must be '\\r\\n' or '\\n'")
    Path(path).write_bytes(format_skeleton(seq, newline).encode("ascii"))
