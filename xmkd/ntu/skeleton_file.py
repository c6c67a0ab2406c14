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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xmkd.errors import FormatError

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
]

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


def read_skeleton(path: str | Path) -> SkeletonSequence:
    """Read an NTU ``.skeleton`` file exactly (every field; CRLF or LF).

    Raises :class:`~xmkd.errors.FormatError` naming the file, the 1-based line and what was
    expected when the file is truncated or malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    return parse_skeleton(data, path)


def parse_skeleton(data: bytes, path: str | Path = "<bytes>") -> SkeletonSequence:
    """Parse the bytes of a ``.skeleton`` file; ``path`` only names it in errors."""
    seq = _parse_fast(data)
    if seq is None:
        # Something did not validate: the exact scan names the line (or, if the fast path was
        # merely too strict, e.g. numbers in exponent notation, reads the file correctly).
        seq = _parse_exact(data, path)
    return seq


# Fast path -----------------------------------------------------------------------------------

# Tokens up to this many characters are converted in bulk: 15 digits stay below 2**53, so the
# integer mantissa is exact in float64 and one division by an exact power of ten gives the
# correctly rounded value, the same double as strtod / float() (Clinger's fast path).
_WIDTH = 15
_COLUMN = np.arange(_WIDTH, dtype=np.uint8)
_PLACE = 10.0 ** np.arange(_WIDTH - 1, -1, -1)
_POW10 = 10.0 ** np.arange(_WIDTH + 1)
_WHITESPACE = (9, 10, 13, 32)
_PLAIN_CHARS = tuple(range(48, 58)) + (45, 46)  # digits, '-', '.'
_EXPONENT_CHARS = (43, 69, 101)  # '+', 'E', 'e': real NTU files hold a few values like 1.5E-05


def _tokenize(u: np.ndarray, histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Token start and end byte offsets, or None when a byte outside the number alphabet occurs."""
    known = _WHITESPACE + _PLAIN_CHARS + _EXPONENT_CHARS
    if histogram[list(known)].sum() != u.size:
        return None
    ws = u <= 32
    edges = np.empty(u.size + 1, dtype=bool)
    edges[0] = not ws[0]
    edges[-1] = not ws[-1]
    np.not_equal(ws[1:], ws[:-1], out=edges[1:-1])
    bounds = np.flatnonzero(edges)
    return bounds[0::2], bounds[1::2]


def _owners(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Index of the token holding each byte position."""
    return np.searchsorted(starts, positions, side="right") - 1


def _convert(
    u: np.ndarray, histogram: np.ndarray, starts: np.ndarray, ends: np.ndarray, data: bytes
) -> np.ndarray | None:
    """float64 value of every token, exactly as ``float()`` reads it; None if one is no number."""
    lengths = ends - starts
    # Tokens with an exponent or too long for the bulk conversion go through float() one by one.
    slow = lengths > _WIDTH
    if histogram[list(_EXPONENT_CHARS)].any():
        exponent = np.flatnonzero((u == 69) | (u == 101) | (u == 43))
        slow[_owners(starts, exponent)] = True
    digit = u - np.uint8(48)
    digit *= digit < 10  # '-', '.', whitespace -> 0
    padded = np.zeros(u.size + _WIDTH, dtype=np.uint8)
    padded[_WIDTH:] = digit
    # Row t holds the _WIDTH bytes ending at token t's end, right-aligned; bytes before its start
    # (whitespace or the previous token) are masked out.
    window = sliding_window_view(padded, _WIDTH)[ends]
    short = np.minimum(lengths, _WIDTH).astype(np.uint8)
    window *= _COLUMN >= (np.uint8(_WIDTH) - short)[:, None]
    values = window.astype(np.float64) @ _PLACE  # digits, a '.' counting as a 0 digit
    symbols = np.zeros(starts.size, dtype=np.int64)  # '-' and '.' per token
    if histogram[46]:
        dots = np.flatnonzero(u == 46)
        owner = _owners(starts, dots)
        keep = ~slow[owner]
        dots, owner = dots[keep], owner[keep]
        if owner.size > 1 and (owner[1:] == owner[:-1]).any():
            return None  # two decimal points
        symbols[owner] = 1
        # Drop the 0 digit the point contributed, then scale by the number of decimals.
        decimals = np.zeros(starts.size, dtype=np.int64)
        decimals[owner] = ends[owner] - 1 - dots
        scale = _POW10[decimals]
        low = np.fmod(values, scale)
        values = np.where(symbols == 1, (values - low) / 10.0 + low, values) / scale
    if histogram[45]:
        minus = np.flatnonzero(u == 45)
        owner = _owners(starts, minus)
        keep = ~slow[owner]
        minus, owner = minus[keep], owner[keep]
        if not np.array_equal(starts[owner], minus):
            return None  # a '-' that does not start its token
        symbols[owner] += 1
        values[owner] *= -1.0
    if (lengths - symbols < 1).any():
        return None  # "-", ".", "-." are not numbers
    for t in np.flatnonzero(slow).tolist():
        text = data[starts[t] : ends[t]]
        try:
            values[t] = float(text)
        except ValueError:
            return None
    return values


def _parse_fast(data: bytes) -> SkeletonSequence | None:
    """Vectorised parse; None when anything does not validate (the exact scan then explains)."""
    u = np.frombuffer(data, dtype=np.uint8)
    if u.size == 0:
        return None
    histogram = np.bincount(u, minlength=256)
    tokens = _tokenize(u, histogram)
    if tokens is None:
        return None
    starts, ends = tokens
    values = _convert(u, histogram, starts, ends, data)
    if values is None:
        return None
    # Per-line token counts: line i spans bytes (newline[i-1], newline[i]].
    newlines = np.flatnonzero(u == 10)
    first_token = np.zeros(newlines.size + 2, dtype=np.int64)
    first_token[1:-1] = np.searchsorted(starts, newlines)
    first_token[-1] = starts.size
    per_line = np.diff(first_token)
    num_lines = per_line.size

    def count(line: int) -> float | None:
        if line >= num_lines or per_line[line] != 1:
            return None
        value = values[first_token[line]]
        return value if value >= 0 and value == math.floor(value) else None

    frames = count(0)
    if frames is None:
        return None
    frame_lines = []
    body_counts = []
    line = 1
    for _ in range(int(frames)):
        bodies = count(line)
        if bodies is None:
            return None
        frame_lines.append(line)
        body_counts.append(int(bodies))
        line += 1 + _BODY_LINES * int(bodies)
    if line > num_lines or per_line[line:].any():
        return None  # truncated, or data after the last frame
    counts = np.asarray(body_counts, dtype=np.int64)
    # Info line of every body: after its frame's count line, 27 lines per body before it.
    frame_of_body = np.repeat(np.arange(counts.size), counts)
    index_in_frame = np.arange(frame_of_body.size) - np.repeat(np.cumsum(counts) - counts, counts)
    info_lines = np.asarray(frame_lines, dtype=np.int64)[frame_of_body] + 1
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
        text = data[starts[t] : ends[t]]
        if not text.isdigit() or int(text) >= 1 << 64:
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
    """Line-by-line cursor over the file text that builds the error messages."""

    def __init__(self, data: bytes, path: str | Path):
        self.lines = data.decode("latin-1").split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()  # the final line break ends the last line, it starts none
        self.path = path
        self.index = 0  # 0-based index of the next line

    def error(self, message: str, line: int | None = None) -> FormatError:
        return FormatError(self.path, message, line=line if line is not None else self.index)

    def take(self, what: str, expected: int) -> list[str]:
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

    def number(self, token: str, what: str) -> float:
        try:
            value = float(token)
        except ValueError:
            value = None
        if value is None or "_" in token:
            raise self.error(f"expected a number for {what}, found {token!r}")
        return value

    def whole(self, token: str, what: str) -> int:
        value = self.number(token, what)
        if not math.isfinite(value) or value < 0 or value != math.floor(value):
            raise self.error(f"expected a whole number >= 0 for {what}, found {token!r}")
        return int(value)


def _quote_line(line: str) -> str:
    return "an empty line" if not line.strip() else repr(line.strip())


def _parse_exact(data: bytes, path: str | Path) -> SkeletonSequence:
    """Line-by-line parse that raises a FormatError at the first problem."""
    cur = _Lines(data, path)
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
                    f"found {tokens[0]!r}"
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
                f"{_quote_line(cur.lines[extra])[:60]}",
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


def format_skeleton(seq: SkeletonSequence, newline: str = "\r\n") -> str:
    """The ``.skeleton`` text of ``seq`` (CRLF by default, like the official release)."""
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
