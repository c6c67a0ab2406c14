"""Packed NTU RGB+D skeletons: all samples of a benchmark part in one memory-mapped array.

``pack_ntu`` (behind ``xmkd prepare-ntu``) reads every ``.skeleton`` file of a folder in
parallel, selects bodies with :func:`xmkd.ntu.to_model_array`, and writes per part (``train``,
``test`` and, for x-sub benchmarks, the paper's ``teacher_train`` / ``student_train``):

- ``{part}_data.npy``   float32 (N, 3, T=300, 25, M=2), written through ``open_memmap``;
- ``{part}_label.npy``  int64 (N,) class index (action - 1);
- ``{part}_frames.npy`` int64 (N,) true frame count of each file (valid frames = min(frames, T));
- ``{part}_names.txt``  the N sample names, one per line;
- ``manifest.json``     benchmark, body selection, sizes, class names (action codes A001...),
  protocol subjects, skipped and malformed files. Written last: a folder without it is an
  interrupted run.

With videos (``prepare-ntu --rgb``, :mod:`xmkd.ntu.videos`) the same folder also holds the
teacher's clips (``rgb/``, ``flow/``, ``ingested/``) and the manifest a ``videos`` entry; the
``teacher_train`` and ``student_train`` parts then keep only the pairs (a sample whose video is
missing or unreadable can neither teach nor be labeled by the teacher; it is listed under
``no_video``), while ``train`` and ``test`` are unchanged.

Samples on the official missing-skeleton list are excluded; malformed files (including values
that are NaN or inf, unless ``allow_nonfinite``) are reported with their error and left out, and
so are entries that are not regular files (a FIFO, a link to a device) or exceed the reader's size
cap: they are never opened. A sample found twice (the same name in two subfolders) is packed once,
from the first path in sorted order, and the other paths are reported as duplicates.
:class:`PackedNTU` reads a part back (memory-mapped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmkd.errors import FormatError, XmkdError
from xmkd.ntu.bodies import SELECTIONS, to_model_array
from xmkd.ntu.names import SampleName, SampleNameError
from xmkd.ntu.skeleton_file import check_skeleton_file, read_skeleton
from xmkd.ntu.splits import (
    ProtocolSplit,
    benchmark_dataset,
    in_benchmark,
    missing_skeletons,
    protocol_split,
)

__all__ = ["MANIFEST", "PackOptions", "PackSummary", "PackedNTU", "pack_ntu", "packed_parts"]

MANIFEST = "manifest.json"
FORMAT = "xmkd-ntu-packed"
VERSION = 1


@dataclass(frozen=True)
class PackOptions:
    """How samples become arrays; the defaults are st-gcn's NTU packing (300 frames, 2 bodies)
    with xmkd's default body selection (see :func:`xmkd.ntu.to_model_array`)."""

    benchmark: str = "xsub60"
    selection: str = "motion"
    max_frames: int = 300
    max_bodies: int = 2
    split: ProtocolSplit = field(default_factory=ProtocolSplit)
    #: Read NaN/inf values instead of leaving their files out as malformed.
    allow_nonfinite: bool = False


@dataclass
class PackSummary:
    """What ``pack_ntu`` did."""

    out: Path
    counts: dict[str, int]
    skipped_missing: list[str]
    malformed: list[tuple[str, str]]  # (file, error)
    unnamed: list[str]  # files whose names are not NTU sample names
    outside: int  # files of samples outside the benchmark (e.g. NTU-120 in xsub60)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (file left out, file kept)
    #: samples left out of teacher_train/student_train for want of a stored video (with --rgb)
    no_video: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A human-readable report."""
        parts = ", ".join(f"{part} {n}" for part, n in self.counts.items())
        out = [f"packed into {self.out}: {parts}"]
        out.append(
            f"skipped {len(self.skipped_missing)} samples on the official missing-skeleton list"
        )
        if self.outside:
            out.append(f"ignored {self.outside} files of samples outside the benchmark")
        for name in self.unnamed:
            out.append(f"ignored {name}: not named after an NTU sample (SsssCcccPpppRrrrAaaa)")
        for dropped, kept in self.duplicates:
            out.append(f"ignored {dropped}: the same sample as {kept}, which was packed")
        if self.no_video:
            out.append(
                f"{len(self.no_video)} samples without a stored video left out of "
                "teacher_train/student_train (kept in train/test)"
            )
        out.append(f"{len(self.malformed)} malformed files left out")
        out += [f"  {error}" for _, error in self.malformed]
        return out


def _num_actions(benchmark: str) -> int:
    return 60 if benchmark_dataset(benchmark) == "ntu60" else 120


def packed_parts(benchmark: str) -> tuple[str, ...]:
    """The parts written for a benchmark."""
    if benchmark.startswith("xsub"):
        return ("train", "test", "teacher_train", "student_train")
    return ("train", "test")


def _parts_of(name: SampleName, options: PackOptions) -> tuple[str, ...]:
    part = in_benchmark(name, options.benchmark)
    if part is None:
        return ()
    if part == "train" and options.benchmark.startswith("xsub"):
        return ("train", protocol_split(name, options.benchmark, options.split))
    return (part,)


def _load(job: tuple[str, str, int, int, bool]) -> tuple[np.ndarray, int] | str:
    """Worker: the model array and true frame count of one file, or its error message."""
    path, selection, max_frames, max_bodies, allow_nonfinite = job
    try:
        seq = read_skeleton(path, allow_nonfinite=allow_nonfinite)
    except FormatError as err:
        return str(err)
    array, _ = to_model_array(seq, max_bodies, max_frames, selection)
    return array, seq.num_frames


def _shrink_npy(path: Path, rows: int) -> None:
    """Cut an .npy file to its first ``rows`` rows (rewrites the header's shape in place)."""
    with open(path, "r+b") as fp:
        version = np.lib.format.read_magic(fp)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(fp)
        offset = fp.tell()
        new_shape = (rows, *shape[1:])
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran}
        header["shape"] = new_shape
        fp.seek(0)
        if version == (1, 0):
            np.lib.format.write_array_header_1_0(fp, header)
        else:
            np.lib.format.write_array_header_2_0(fp, header)
        if fp.tell() != offset:  # the header changed length: cannot happen for shorter shapes
            raise XmkdError(f"cannot shrink {path}: its header would change length")
        fp.truncate(offset + rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)


def pack_ntu(
    skeletons: str | Path,
    out: str | Path,
    options: PackOptions = PackOptions(),
    workers: int | None = None,
    progress: bool = True,
    pairs: set[str] | None = None,
    videos: dict | None = None,
) -> PackSummary:
    """Pack every ``.skeleton`` file under ``skeletons`` into ``out`` (see the module docs).

    ``pairs``: the samples with a stored video; when given, ``teacher_train`` and
    ``student_train`` keep only those. ``videos`` goes into the manifest as its ``videos`` entry.
    """
    skeletons, out = Path(skeletons), Path(out)
    if options.selection not in SELECTIONS:
        raise XmkdError(f"unknown body selection {options.selection!r}; choose {SELECTIONS}")
    if not skeletons.is_dir():
        raise XmkdError(f"the skeleton folder {skeletons} does not exist")
    if options.benchmark.startswith("xsub"):
        options.split.teachers(options.benchmark)  # validate before any work
    missing = missing_skeletons(options.benchmark)
    files = sorted(skeletons.rglob("*.skeleton"), key=lambda p: (p.name, str(p)))
    if not files:
        raise XmkdError(f"no .skeleton files in {skeletons}")
    jobs, names, parts_of, unnamed, skipped, outside = [], [], [], [], [], 0
    malformed: list[tuple[str, str]] = []
    duplicates: list[tuple[str, str]] = []
    packed_from: dict[str, Path] = {}
    no_video: list[str] = []
    for path in files:
        try:
            name = SampleName.from_path(path)
        except SampleNameError:
            unnamed.append(str(path))
            continue
        if str(name) in missing:
            skipped.append(str(name))
            continue
        parts = _parts_of(name, options)
        if not parts:
            outside += 1
            continue
        try:  # a FIFO would hang a worker, /dev/zero fill its memory: stat only, never open
            check_skeleton_file(path)
        except FormatError as err:
            malformed.append((str(path), str(err)))
            continue
        if str(name) in packed_from:
            duplicates.append((str(path), str(packed_from[str(name)])))
            continue
        packed_from[str(name)] = path
        if pairs is not None and str(name) not in pairs:
            protocol = ("teacher_train", "student_train")
            if any(p in protocol for p in parts):
                no_video.append(str(name))
                parts = tuple(p for p in parts if p not in protocol)
        job = (str(path), options.selection, options.max_frames, options.max_bodies)
        jobs.append((*job, options.allow_nonfinite))
        names.append(name)
        parts_of.append(parts)

    part_names = packed_parts(options.benchmark)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the folder is incomplete until we finish
    shape = (3, options.max_frames, 25, options.max_bodies)
    capacity = {p: sum(p in ps for ps in parts_of) for p in part_names}
    arrays = {
        p: np.lib.format.open_memmap(
            out / f"{p}_data.npy", mode="w+", dtype=np.float32, shape=(capacity[p], *shape)
        )
        for p in part_names
    }
    rows = {p: [] for p in part_names}  # (name, label, frames) per written row
    results = _run(jobs, workers)
    try:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="prepare-ntu", unit="file", disable=not progress)
        for job, name, parts, result in zip(jobs, names, parts_of, results):
            bar.update()
            if isinstance(result, str):
                malformed.append((job[0], result))
                continue
            array, frames = result
            for p in parts:
                arrays[p][len(rows[p])] = array
                rows[p].append((str(name), name.label, frames))
        bar.close()
    finally:
        close = getattr(results, "close", None)
        if close:
            close()
    for p in part_names:
        arrays[p].flush()
        del arrays[p]
        _shrink_npy(out / f"{p}_data.npy", len(rows[p]))
        np.save(out / f"{p}_label.npy", np.array([r[1] for r in rows[p]], dtype=np.int64))
        np.save(out / f"{p}_frames.npy", np.array([r[2] for r in rows[p]], dtype=np.int64))
        (out / f"{p}_names.txt").write_text("".join(f"{r[0]}\n" for r in rows[p]))
    summary = PackSummary(
        out,
        {p: len(rows[p]) for p in part_names},
        skipped,
        malformed,
        unnamed,
        outside,
        duplicates,
        no_video,
    )
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "benchmark": options.benchmark,
        "selection": options.selection,
        "max_frames": options.max_frames,
        "max_bodies": options.max_bodies,
        "parts": summary.counts,
        # Class i is action A(i+1); the names are the dataset's action codes.
        "class_names": [f"A{a:03d}" for a in range(1, _num_actions(options.benchmark) + 1)],
        "source": str(skeletons),
        "skipped_missing": skipped,
        "malformed": [{"file": f, "error": e} for f, e in malformed],
        "unnamed": unnamed,
        "outside_benchmark": outside,
        "duplicates": [{"file": f, "kept": k} for f, k in duplicates],
        "allow_nonfinite": options.allow_nonfinite,
    }
    if options.benchmark.startswith("xsub"):
        manifest["teacher_subjects"] = sorted(options.split.teachers(options.benchmark))
        manifest["student_subjects"] = sorted(options.split.students(options.benchmark))
    if videos is not None:
        manifest["videos"] = {**videos, "no_video": no_video}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return summary


class _Results:
    """Ordered results of ``_load`` over the jobs, in a process pool when workers > 1."""

    def __init__(self, jobs: list, workers: int):
        import multiprocessing

        self._pool = multiprocessing.get_context("spawn").Pool(workers)
        self._iter = self._pool.imap(_load, jobs, chunksize=max(1, min(16, len(jobs) // workers)))

    def __iter__(self) -> Iterator:
        return self._iter

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


def _run(jobs: list, workers: int | None):
    workers = workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(jobs)))
    if workers <= 1:
        return map(_load, jobs)
    return _Results(jobs, workers)


class PackedNTU:
    """One part of a packed NTU folder, memory-mapped.

    ``data`` float32 (N, 3, T, 25, M), ``labels`` int64 (N,), ``names`` list of N sample names,
    ``frames`` int64 (N,) true frame counts, ``valid_frames`` = min(frames, T); ``manifest`` is
    the folder's manifest. ``packed[i]`` gives ``(data[i], labels[i])``.
    """

    def __init__(self, root: str | Path, part: str):
        root = Path(root)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise XmkdError(
                f"{root} is not a complete packed NTU folder (no {MANIFEST}); "
                "run xmkd prepare-ntu to create it"
            )
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise FormatError(manifest_path, f"not a readable manifest ({exc})") from exc
        if self.manifest.get("format") != FORMAT:
            raise FormatError(manifest_path, f"not an xmkd packed NTU manifest (format {FORMAT})")
        parts = self.manifest.get("parts", {})
        if part not in parts:
            raise XmkdError(f"{root} has no part {part!r}; it has {', '.join(parts) or 'none'}")
        self.root, self.part = root, part
        self.data = np.load(root / f"{part}_data.npy", mmap_mode="r")
        self.labels = np.load(root / f"{part}_label.npy")
        self.frames = np.load(root / f"{part}_frames.npy")
        self.names = (root / f"{part}_names.txt").read_text().split()
        n = parts[part]
        if (
            not (
                self.data.shape[0]
                == self.labels.shape[0]
                == self.frames.shape[0]
                == len(self.names)
            )
            or self.data.shape[0] != n
        ):
            raise FormatError(root / f"{part}_data.npy", f"part {part} does not hold {n} samples")

    @property
    def valid_frames(self) -> np.ndarray:
        return np.minimum(self.frames, self.data.shape[2])

    @property
    def benchmark(self) -> str:
        return self.manifest["benchmark"]

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.data[index], int(self.labels[index])
