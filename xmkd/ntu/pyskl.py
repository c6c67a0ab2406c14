"""Skeleton data for pyskl and mmaction2: packed NTU or xmkd recordings as their annotation pickle.

pyskl (``ntu60_3danno.pkl``, ``ntu120_3danno.pkl``) and mmaction2's ``PoseDataset`` train on one
pickle holding a dict::

    {"split": {"xsub_train": [frame_dir, ...], "xsub_val": [...], ...},
     "annotations": [{"frame_dir": "S001C001P001R001A001", "label": 0,
                      "keypoint": float32 (M, T, 25, 3), "total_frames": T}, ...]}

``keypoint`` holds x y z in metres (NTU camera space, as in the ``.skeleton`` files: no centring,
which the toolboxes' ``PreNormalize3D`` does), M the bodies present (1 or 2, chosen by xmkd's
body selection, :func:`xmkd.ntu.to_model_array`), T the clip's frames (no padding frames; a clip
longer than a packed folder's 300 frames keeps its first 300), V the 25 NTU joints in file order.
``label`` is the 0-based class (action - 1). Every sample is listed once in ``annotations``; the
splits name samples by ``frame_dir``.

Splits (the toolboxes' names for the benchmarks, plus the paper's protocol parts):

====================  ============================================================
``xsub_train``        x-sub training subjects (NTU-60 xsub60 / NTU-120 xsub120)
``xsub_val``          x-sub test subjects: the paper's Test
``xsub_teacher_train``  the paper's Teacher-Train (x-sub benchmarks only)
``xsub_student_train``  the paper's Student-Train (x-sub benchmarks only)
``xview_train/_val``  NTU-60 cross-view (cameras 2, 3 / camera 1)
``xset_train/_val``   NTU-120 cross-setup (even / odd setups)
``no_benchmark``      recordings only: the clips in no split of the benchmark (your own
                      recordings, unlabeled A000, labeled by a teacher)
====================  ============================================================

A packed folder holds one benchmark, so it gives that benchmark's splits; recordings give the
splits of the benchmark asked for. With a teacher's label cache (``xmkd label``) the samples of
the training splits get the teacher's hard label (the argmax of its logits, as the paper's
Table 4 "cross-entropy" students), their ground truth stays in ``gt_label`` (-1 when unknown), and
a training sample the teacher did not label is left out of the training splits (reported); the
``_val`` splits keep the ground truth, which is what a student is evaluated against.

Arrays are pickled as ``numpy.ndarray(shape, dtype, bytearray)``: a name every NumPy version
has (NumPy 2's own array pickles name ``numpy._core``, which the NumPy 1.x of many pyskl
installations cannot import), writable after loading (the toolboxes transform keypoints in
place). The file is written streaming (one sample in memory at a time) to a temporary file,
renamed into place when complete.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmkd.errors import XmkdError

__all__ = [
    "ExportPlan",
    "ExportSummary",
    "PICKLE_PROTOCOL",
    "plan_from_packed",
    "plan_from_sessions",
    "split_key",
    "write_pyskl",
]

#: Protocol 3: readable by every Python 3; its memo entries carry explicit indices, so the memo
#: can be cleared between samples (protocol 4's MEMOIZE numbers them implicitly, by count)
PICKLE_PROTOCOL = 3
#: The toolboxes' split prefix per xmkd benchmark
SPLIT_PREFIX = {"xsub60": "xsub", "xview60": "xview", "xsub120": "xsub", "xset120": "xset"}
#: xmkd's part (packed folder part, protocol split) -> the split's suffix in the pickle
PART_SUFFIX = {
    "train": "train",
    "test": "val",
    "teacher_train": "teacher_train",
    "student_train": "student_train",
}
#: The split of the recording clips outside the benchmark (own recordings, A000)
OTHER_SPLIT = "no_benchmark"


def split_key(benchmark: str, part: str) -> str:
    """The pickle's split name of a benchmark part: ``split_key("xsub60", "test")`` is
    ``"xsub_val"``."""
    return f"{SPLIT_PREFIX[benchmark]}_{PART_SUFFIX[part]}"


@dataclass
class ExportPlan:
    """What to write: sample names, ground-truth labels (-1 unknown), a reader of each sample's
    model array, and the splits (name -> sample names; ``eval_splits`` keep the ground truth)."""

    names: list[str]
    labels: np.ndarray
    #: i -> (float32 (3, T, 25, M) model array, valid frames)
    read: Callable[[int], tuple[np.ndarray, int]]
    splits: dict[str, list[str]]
    eval_splits: set[str]
    class_names: list[str] | None
    source: str


@dataclass
class ExportSummary:
    """What :func:`write_pyskl` wrote."""

    out: Path
    samples: int
    splits: dict[str, int]
    label_source: str
    #: training split -> samples left out because the teacher did not label them
    unlabeled: dict[str, int] = field(default_factory=dict)
    #: samples with no label at all (no ground truth, no teacher label): not written
    no_label: int = 0

    def lines(self) -> list[str]:
        out = [f"wrote {self.out}: {self.samples} samples, labels from {self.label_source}"]
        out += [f"  split {name}: {n} samples" for name, n in self.splits.items()]
        for name, n in self.unlabeled.items():
            out.append(f"  left out of {name}: {n} samples the teacher did not label")
        if self.no_label:
            out.append(
                f"  left out: {self.no_label} clips with neither an action nor a teacher label"
            )
        return out


def keypoint_array(model_array: np.ndarray, valid_frames: int) -> np.ndarray:
    """The toolboxes' ``keypoint`` (M, T, 25, 3) float32 from xmkd's (3, T, 25, M) model array:
    the first ``valid_frames`` frames (no padding), the body slots up to the last one that holds
    a body (at least one: xmkd's body selection fills slot 0 first)."""
    x = np.asarray(model_array, dtype=np.float32)[:, :valid_frames]
    kp = np.ascontiguousarray(x.transpose(3, 1, 2, 0))  # (M, T, V, C)
    present = np.flatnonzero(np.abs(kp).reshape(kp.shape[0], -1).max(axis=1, initial=0) > 0)
    bodies = int(present[-1]) + 1 if present.size else 1
    return kp[:bodies].copy()


# ------------------------------------------------------------------------------------- sources
def plan_from_packed(root: str | Path) -> ExportPlan:
    """Every sample of a packed NTU folder (``xmkd prepare-ntu``): its train and test parts are
    the annotations (each sample once); every part is a split."""
    from xmkd.ntu.pack import MANIFEST, PackedNTU

    root = Path(root)
    train = PackedNTU(root, "train")
    test = PackedNTU(root, "test")
    benchmark = train.benchmark
    if benchmark not in SPLIT_PREFIX:
        raise XmkdError(f"{root / MANIFEST}: unknown benchmark {benchmark!r}")
    names = list(train.names) + list(test.names)
    labels = np.concatenate([train.labels, test.labels]).astype(np.int64)
    rows = [(train, i) for i in range(len(train))] + [(test, i) for i in range(len(test))]

    def read(i: int) -> tuple[np.ndarray, int]:
        part, row = rows[i]
        return np.asarray(part.data[row]), int(part.valid_frames[row])

    splits = {}
    for part in train.manifest.get("parts", {}):
        if part not in PART_SUFFIX:
            continue
        part_names = (
            train.names
            if part == "train"
            else test.names
            if part == "test"
            else PackedNTU(root, part).names
        )
        splits[split_key(benchmark, part)] = list(part_names)
    return ExportPlan(
        names,
        labels,
        read,
        splits,
        {split_key(benchmark, "test")},
        train.manifest.get("class_names"),
        str(root),
    )


def plan_from_sessions(sessions: Sequence[str | Path], benchmark: str = "xsub60") -> ExportPlan:
    """Every clip of xmkd recordings, read with the datasets' reader (xmkd's body selection, as
    for training): the splits of ``benchmark``, and ``no_benchmark`` for the clips outside it
    (your own recordings: unlabeled A000 clips)."""
    from xmkd.data import SkeletonDataset
    from xmkd.ntu.splits import in_benchmark, protocol_split

    if benchmark not in SPLIT_PREFIX:
        raise XmkdError(f"unknown NTU benchmark {benchmark!r}; choose {', '.join(SPLIT_PREFIX)}")
    data = SkeletonDataset(list(sessions))
    splits: dict[str, list[str]] = {}
    for name in data.names:
        part = in_benchmark(name, benchmark)
        if part is None:
            splits.setdefault(OTHER_SPLIT, []).append(name)
            continue
        splits.setdefault(split_key(benchmark, part), []).append(name)
        if part == "train" and benchmark.startswith("xsub"):
            splits.setdefault(split_key(benchmark, protocol_split(name, benchmark)), []).append(
                name
            )

    def read(i: int) -> tuple[np.ndarray, int]:
        return data.data[i], int(data.valid_frames[i])

    return ExportPlan(
        list(data.names),
        np.asarray(data.labels, dtype=np.int64),
        read,
        splits,
        {split_key(benchmark, "test")},
        data.class_names,
        ", ".join(str(s) for s in sessions),
    )


# -------------------------------------------------------------------------------------- labels
def teacher_hard_labels(plan: ExportPlan, labels_path: str | Path) -> dict[str, int]:
    """Sample name -> the teacher's class (argmax of its logits) for the plan's samples in a
    label cache (``xmkd label``); the cache's classes must be the data's."""
    from xmkd.train.label import load_labels

    cache = load_labels(labels_path)
    if plan.class_names is not None and list(cache.class_names) != list(plan.class_names):
        raise XmkdError(
            f"{labels_path}: its teacher knows {len(cache.class_names)} classes "
            f"({', '.join(cache.class_names[:3])}, ...), the data {plan.source} has "
            f"{len(plan.class_names)} ({', '.join(plan.class_names[:3])}, ...): the labels are "
            "of another data set"
        )
    known = [n for n in plan.names if n in cache]
    if not known:
        raise XmkdError(
            f"{labels_path}: holds no teacher label for any sample of {plan.source} "
            f"(it labels {len(cache)} other samples)"
        )
    hard = cache.lookup(known, str(labels_path)).argmax(dim=1).tolist()
    return dict(zip(known, (int(c) for c in hard)))


# ------------------------------------------------------------------------------------- writing
class _Streamed:
    """A list pickled item by item from an iterator (pickle's ``listitems``): it unpickles as a
    plain ``list``, and the writer holds one sample at a time (with the memo cleared between
    samples, see :func:`write_pyskl`)."""

    def __init__(self, items: Iterator[Any]):
        self._items = items

    def __reduce_ex__(self, protocol: int) -> tuple[Any, ...]:
        return (list, (), None, self._items)


class _Pickler(pickle.Pickler):
    """Arrays as ``numpy.ndarray(shape, dtype, bytearray)`` (see the module docs)."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:
            arr = np.ascontiguousarray(obj)
            return np.ndarray, (arr.shape, arr.dtype.str, bytearray(arr.tobytes()))
        return NotImplemented


def write_pyskl(
    plan: ExportPlan,
    out: str | Path,
    labels_path: str | Path | None = None,
    progress: bool = False,
) -> ExportSummary:
    """Write ``plan`` as a pyskl/mmaction2 annotation pickle at ``out`` (see the module docs),
    with ground-truth labels or, given ``labels_path``, the teacher's for the training splits."""
    out = Path(out)
    teacher = teacher_hard_labels(plan, labels_path) if labels_path is not None else None
    label_of: dict[str, int] = {}
    gt = {n: int(v) for n, v in zip(plan.names, plan.labels)}
    splits: dict[str, list[str]] = {}
    unlabeled: dict[str, int] = {}
    for split, members in plan.splits.items():
        kept = []
        for name in members:
            if split in plan.eval_splits or teacher is None:
                label = gt[name]
            else:
                label = teacher.get(name, -1)
                if label < 0:
                    unlabeled[split] = unlabeled.get(split, 0) + 1
            if label < 0:
                continue
            # a sample is in one eval split or in training splits, never both (one benchmark)
            label_of[name] = label
            kept.append(name)
        if kept:
            splits[split] = kept
    if not splits:
        raise XmkdError(f"{plan.source}: no sample has a label to export")
    written = [i for i, n in enumerate(plan.names) if n in label_of]
    no_label = sum(1 for n in plan.names if n not in label_of and gt[n] < 0)

    def annotations() -> Iterator[dict[str, Any]]:
        from tqdm import tqdm

        for i in tqdm(written, desc="export", unit="sample", disable=not progress):
            # the pickler's memo keeps every object it saved alive: cleared between samples (no
            # object is shared between them), the export runs in the memory of one sample
            pickler.clear_memo()
            name = plan.names[i]
            array, valid = plan.read(i)
            keypoint = keypoint_array(array, valid)
            item = {
                "frame_dir": name,
                "label": label_of[name],
                "keypoint": keypoint,
                "total_frames": int(keypoint.shape[1]),
            }
            if teacher is not None:
                item["gt_label"] = gt[name]
            yield item

    content = {"split": splits, "annotations": _Streamed(annotations())}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw, io.BufferedWriter(raw, 1 << 20) as fp:
            pickler = _Pickler(fp, protocol=PICKLE_PROTOCOL)
            pickler.dump(content)
            fp.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    from xmkd.recordings import fsync_dir

    fsync_dir(out.parent)
    return ExportSummary(
        out,
        len(written),
        {k: len(v) for k, v in splits.items()},
        "the teacher's label cache " + str(labels_path) if teacher is not None else "ground truth",
        unlabeled,
        no_label,
    )
