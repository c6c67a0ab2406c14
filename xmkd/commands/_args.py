"""Argument types of the ``xmkd`` command line: every option is checked when it is parsed.

Each function here is an argparse ``type=``: it turns the text of one option into its value or
raises :class:`argparse.ArgumentTypeError` with one sentence, which argparse prints as
``xmkd distill: error: argument --epochs: must be a positive integer, got 0`` (exit code 2).
Checks that need several options at once (an HCN window must be a multiple of 16) are added to
a parser with :func:`add_check` and run right after parsing, still before any work starts.

The bounds are wide enough for every real use and narrow enough that a typo cannot start a run
that allocates terabytes or trains to NaN; each says why where the reason is not obvious.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn

Check = Callable[[argparse.Namespace], None]

#: NumPy's seeds are 32-bit (torch accepts more, but both must take the same seed)
MAX_SEED = 2**32 - 1
#: more worker processes than any machine xmkd runs on has cores
MAX_WORKERS = 256
#: frames per skeleton window: 100 s at 30 fps (NTU clips have at most 300 frames); a longer
#: window only multiplies memory (a batch of 16 such windows is already 58 MB)
MAX_WINDOW = 3000
#: width multiplier of a model: 4x the reference's channels (ST-GCN then has 49 M parameters;
#: 16x would have 780 M)
MAX_WIDTH = 4.0
#: students trained together: the paper uses at most 4; each one adds a full model's memory and
#: time to every step
MAX_STUDENTS = 16
#: learning rates above this diverge at once with every optimizer xmkd uses
MAX_LR = 10.0
#: temperatures above this make every softened distribution uniform (the paper uses 1..50)
MAX_TAU = 1000.0


class XmkdArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that runs its cross-option checks after parsing and reports any error
    as one line (no usage block), so a bad value reads as one sentence."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, rest = super().parse_known_args(args, namespace)
        for check in getattr(self, "xmkd_checks", ()):
            try:
                check(ns)
            except argparse.ArgumentTypeError as err:
                self.error(str(err))
        return ns, rest

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_check(parser: argparse.ArgumentParser, check: Check) -> None:
    """Run ``check(namespace)`` after ``parser`` parsed its options; it raises
    ArgumentTypeError with a sentence that names the options involved."""
    checks = getattr(parser, "xmkd_checks", None)
    if checks is None:
        checks = []
        parser.xmkd_checks = checks  # type: ignore[attr-defined]
    checks.append(check)


def fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def describe(parse: Callable[..., object], kind: str, **bounds: object) -> None:
    """Record what ``parse`` accepts on the function (``xmkd_kind`` and its bounds), so tests
    can tell every option is checked and generate values on both sides of each bound."""
    parse.xmkd_kind = kind  # type: ignore[attr-defined]
    parse.xmkd_bounds = bounds  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------------- numbers
def _to_int(text: str, what: str) -> int:
    """An integer from ``text``; "1e3" is accepted as 1000 (a whole number written as a float)."""
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        value = float(s)
    except ValueError:
        fail(f"must be {what}, got {text!r}")
    if not math.isfinite(value) or value != int(value):
        fail(f"must be {what}, got {text!r}")
    return int(value)


def int_range(lo: int, hi: int | None = None, why: str = "") -> Callable[[str], int]:
    """An integer in [lo, hi] (no upper bound with hi=None); ``why`` explains the bound."""
    if hi is None:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            lo, f"an integer of at least {lo}"
        )
    else:
        what = f"an integer from {lo} to {hi}"
    reason = f" ({why})" if why else ""

    def parse(text: str) -> int:
        value = _to_int(text, what)
        if value < lo or (hi is not None and value > hi):
            fail(f"must be {what}{reason}, got {value}")
        return value

    parse.__name__ = "integer"
    describe(parse, "int", lo=lo, hi=hi)
    return parse


positive_int = int_range(1)
nonneg_int = int_range(0)
seed_int = int_range(0, MAX_SEED, "NumPy seeds are 32-bit")


def float_range(
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    why: str = "",
) -> Callable[[str], float]:
    """A finite number in the interval given (None: unbounded on that side)."""
    if lo is None and hi is None:
        what = "a finite number"
    elif hi is None:
        what = f"a finite number {'>' if lo_open else '>='} {lo:g}"
        if lo == 0 and lo_open:
            what = "a positive finite number"
        elif lo == 0:
            what = "a finite number >= 0"
    else:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        what = f"a number in {left}{lo:g}, {hi:g}{right}"
    reason = f" ({why})" if why else ""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            fail(f"must be {what}, got {text!r}")
        bad = not math.isfinite(value)
        if lo is not None:
            bad = bad or value < lo or (lo_open and value == lo)
        if hi is not None:
            bad = bad or value > hi or (hi_open and value == hi)
        if bad:
            fail(f"must be {what}{reason}, got {text.strip()}")
        return value

    parse.__name__ = "number"
    describe(parse, "float", lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)
    return parse


positive_float = float_range(0.0, lo_open=True)
nonneg_float = float_range(0.0)
#: a fraction of samples (label noise): 1 would leave no correct label at all
fraction = float_range(0.0, 1.0, hi_open=True, why="1 would leave no correct label")
width_float = float_range(
    0.0, MAX_WIDTH, lo_open=True, why="a width multiplier; 1 = the reference's channels"
)
tau_float = float_range(
    0.0, MAX_TAU, lo_open=True, why="a softmax temperature; the paper uses 1 to 50"
)
lr_float = float_range(0.0, MAX_LR, lo_open=True, why="larger rates diverge at once")
window_int = int_range(1, MAX_WINDOW, "frames per window; NTU clips have at most 300")
workers_int = int_range(0, MAX_WORKERS, "0 loads in the main process")


# ---------------------------------------------------------------------------------------- lists
def int_list(lo: int = 1, example: str = "10,50") -> Callable[[str], list[int]]:
    """Comma-separated integers of at least ``lo``, at least one."""

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        what = f"comma-separated integers of at least {lo}, e.g. {example}"
        if not parts:
            fail(f"must be {what}, got {text!r}")
        values = []
        for part in parts:
            try:
                value = int(part)
            except ValueError:
                fail(f"must be {what}, got {text!r}")
            if value < lo:
                fail(f"must be {what}, got {text!r}")
            values.append(value)
        return values

    parse.__name__ = "list"
    describe(parse, "int_list", lo=lo)
    return parse


def name_list(known: Callable[[], Iterable[str]], what: str) -> Callable[[str], list[str]]:
    """Comma-separated names, each one of ``known()`` (called lazily: it may import)."""

    def parse(text: str) -> list[str]:
        names = [p.strip() for p in text.split(",") if p.strip()]
        valid = list(known())
        if not names:
            fail(f"must be comma-separated {what}, got {text!r}")
        unknown = [n for n in names if n not in valid]
        if unknown:
            fail(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(valid)}")
        return names

    parse.__name__ = "names"
    describe(parse, "names", known=known)
    return parse


# ---------------------------------------------------------------------------------------- paths
def _path_text(text: str) -> str:
    if not text.strip():
        fail("must be a path, got ''")
    if "\0" in text:
        fail(f"must be a path, got {text!r} (it holds a NUL character)")
    return text


def existing_file(text: str) -> str:
    """An existing regular file (or a link to one)."""
    path = Path(_path_text(text))
    if path.is_dir():
        fail(f"{text} is a folder, not a file")
    if not path.exists():
        fail(f"{text} does not exist")
    if not path.is_file():
        fail(f"{text} is not a regular file")
    if not os.access(path, os.R_OK):
        fail(f"{text} cannot be read (no permission)")
    return text


def existing_dir(text: str) -> str:
    """An existing folder."""
    path = Path(_path_text(text))
    if not path.exists():
        fail(f"{text} does not exist")
    if not path.is_dir():
        fail(f"{text} is not a folder")
    return text


def existing_path(text: str) -> str:
    """An existing file or folder."""
    path = Path(_path_text(text))
    if not path.exists():
        fail(f"{text} does not exist")
    if not (path.is_file() or path.is_dir()):
        fail(f"{text} is neither a regular file nor a folder")
    return text


def _creatable_dir(text: str, path: Path) -> None:
    """Fail unless ``path`` is a folder we can write into or can create: a probe folder is made
    (and removed) in the nearest existing ancestor, so read-only mounts and /proc fail here,
    before any work, even for root (for whom permission bits say nothing)."""
    probe_in = path
    while not probe_in.exists():
        if probe_in.is_symlink():  # a dangling link
            fail(f"cannot create the folder {text} ({probe_in} is a broken link)")
        parent = probe_in.parent
        if parent == probe_in:
            break
        probe_in = parent
    if not probe_in.is_dir():
        if probe_in == path:
            fail(f"{text} is a file, not a folder")
        fail(f"cannot create the folder {text} ({probe_in} is a file)")
    if str(probe_in) in _WRITABLE:
        return
    try:
        probe = tempfile.mkdtemp(prefix=".xmkd-probe-", dir=probe_in)
    except OSError as exc:
        action = "write into the folder" if probe_in == path else "create the folder"
        fail(f"cannot {action} {text} ({exc.strerror or exc})")
    shutil.rmtree(probe, ignore_errors=True)
    _WRITABLE.add(str(probe_in))


#: folders a probe could write into, in this process (one command line probes each once)
_WRITABLE: set[str] = set()


def out_dir(text: str) -> str:
    """A folder that exists and is writable, or can be created (it is not created here)."""
    _creatable_dir(text, Path(_path_text(text)))
    return text


def out_file(text: str) -> str:
    """A file to write: not a folder, in a folder that exists or can be created."""
    path = Path(_path_text(text))
    if path.is_dir():
        fail(f"{text} is a folder, not a file")
    if path.exists() and not path.is_file():
        fail(f"{text} is not a regular file")
    _creatable_dir(str(path.parent), path.absolute().parent)
    return text


def out_file_or_stdout(text: str) -> str:
    """``-`` (standard output) or a file to write."""
    return text if text == "-" else out_file(text)


def folder_name(text: str) -> str:
    """One folder name (no path separators, not . or ..)."""
    name = text.strip()
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        fail(f"must be a folder name without '/', got {text!r}")
    return name


def keep_text(parse: Callable[[str], object]) -> Callable[[str], str]:
    """The same check as ``parse``, giving the text itself (for commands that split it later)."""

    def wrapped(text: str) -> str:
        parse(text)
        return text

    wrapped.__name__ = "text"
    wrapped.__dict__.update(parse.__dict__)
    return wrapped


def as_path(parse: Callable[[str], str]) -> Callable[[str], Path]:
    """The same check as ``parse``, giving a Path."""

    def wrapped(text: str) -> Path:
        return Path(parse(text))

    wrapped.__name__ = "path"
    wrapped.__dict__.update(parse.__dict__)
    return wrapped


# -------------------------------------------------------------------------------------- devices
_DEVICE = re.compile(r"^(auto|cpu|mps|(cuda|xpu)(:\d{1,3})?)$")


def device_name(text: str) -> str:
    """auto, cpu, cuda, cuda:N (or mps, xpu[:N]); whether it exists is checked when it is used."""
    name = text.strip().lower()
    if not _DEVICE.match(name):
        fail(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return name


def source_spec(text: str) -> str:
    """A capture source spec (capture.source.parse_spec): its kind and path are checked here."""
    from capture.source import parse_spec, source_kind
    from xmkd.errors import XmkdError

    try:
        kind, arg, _ = parse_spec(text)
    except XmkdError as exc:
        fail(str(exc))
    takes = source_kind(kind).arg  # the registry says which kinds read a path or a file
    if takes in ("path", "file"):
        path = Path(arg)
        if not path.exists():
            fail(f"{text}: {arg} does not exist")
        if takes == "file" and not path.is_file():
            fail(f"{text}: {arg} is not a file")
    return text


for _parse, _kind in (
    (existing_file, "existing_file"),
    (existing_dir, "existing_dir"),
    (existing_path, "existing_path"),
    (out_dir, "out_dir"),
    (out_file, "out_file"),
    (out_file_or_stdout, "out_file_or_stdout"),
    (folder_name, "folder_name"),
    (device_name, "device"),
    (source_spec, "source"),
):
    describe(_parse, _kind)
