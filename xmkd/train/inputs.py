"""Training/evaluation inputs: the protocol's splits of sessions or packed NTU, windowed per model.

The datasets of :mod:`xmkd.data` yield raw clips; the wrappers here apply the model's input
pipeline (students: :func:`xmkd.preprocess.prepare_window` with the checkpoint's ``InputSpec``;
teacher: :func:`xmkd.models.tsn.teacher_input` with its ``TSNInputSpec``). In training mode the
random crop/augmentation of item ``i`` in epoch ``e`` draws from a generator seeded with
``(seed, e, i)``: the same windows whatever the number of loader workers or processes, and a
resumed run sees exactly what an uninterrupted one sees. The trainers call ``set_epoch``.

Splits (the paper's protocol, :func:`xmkd.ntu.splits.protocol_split`): the teacher learns on
``teacher_train``, the students on the unlabeled pairs of ``student_train``, everything is
evaluated on ``test``. ``"all"`` takes every clip (your own recordings: their clips are unlabeled,
action A000, and belong to no benchmark split).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from xmkd.errors import XmkdError
from xmkd.ntu.splits import SPLIT_CHOICES


class _EpochSeededItems(Dataset):
    """A view of a dataset whose training-time randomness is seeded by (seed, epoch, index), so an
    epoch draws the same augmentation whatever the worker count, and a resumed run repeats it."""

    def __init__(self, base: Any, spec: Any, train: bool, seed: int = 0):
        self.base = base
        self.spec = spec
        self.train = train
        self.seed = seed
        # In shared memory: loader workers that outlive an epoch (persistent_workers) hold a
        # copy of this object made when they started, and must still see the current epoch.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.names: list[str] = list(base.names)
        self.labels = np.asarray(base.labels, dtype=np.int64)
        self.class_names = getattr(base, "class_names", None)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating the epoch's loader (its workers read it per item)."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.base)

    def _rng(self, index: int) -> np.random.Generator | None:
        return np.random.default_rng([self.seed, self.epoch, int(index)]) if self.train else None


class StudentWindows(_EpochSeededItems):
    """Items ``(window (3, T, 25, M), label, index)`` of a skeleton dataset, for the students."""

    def __getitem__(self, index: int):
        from xmkd.preprocess import prepare_window

        x, label, _ = self.base[index][:3]
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        valid = int(self.base.valid_frames[index])
        window = prepare_window(x, valid, self.spec, train=self.train, rng=self._rng(index))
        return torch.from_numpy(window), int(label), int(index)


class TeacherClips(_EpochSeededItems):
    """Items ``(teacher input (K, C, H, W), label, index)`` of a video dataset."""

    def __getitem__(self, index: int):
        from xmkd.models.tsn import teacher_input

        sparse = getattr(self.base, "teacher_input", None)
        if sparse is not None:  # packed NTU videos: decode only the sampled frames
            x = sparse(index, self.spec, train=self.train, rng=self._rng(index))
        else:
            frames = self.base.load(index)
            x = teacher_input(frames, self.spec, train=self.train, rng=self._rng(index))
        return x, int(self.labels[index]), int(index)


def loader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of the teacher's data loaders: one thread for OpenCV (and torch) in
    each worker. The workers already run in parallel, one per core; OpenCV's own thread pool
    (one thread per core in every worker, for each resize) only oversubscribes the cores."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loader_options(num_workers: int, pin_memory: bool = False) -> dict[str, Any]:
    """The teacher's DataLoader settings beside the dataset and batching: workers kept across
    epochs (no restart and re-fork each epoch; :meth:`_EpochSeededItems.set_epoch` reaches
    them), one OpenCV thread each, batches pinned for a CUDA device."""
    options: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory}
    if num_workers > 0:
        options.update(persistent_workers=True, worker_init_fn=loader_worker_init)
    return options


def _split_arg(split: str) -> str | None:
    if split not in SPLIT_CHOICES:
        raise XmkdError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    return None if split == "all" else split


def _nonempty(dataset: Any, split: str, where: str, sessions: bool = True) -> Any:
    if len(dataset) == 0:
        hint = (
            "; your own recordings (unlabeled A000 clips) belong to no benchmark split: "
            "pass --split all"
            if split != "all" and sessions
            else ""
        )
        raise XmkdError(f"{where} holds no clips of the {split} split{hint}")
    return dataset


def skeleton_source(
    sessions: Sequence[str | Path] = (),
    packed: str | Path | None = None,
    split: str = "student_train",
    benchmark: str = "xsub60",
    labeled_only: bool = False,
) -> Any:
    """The raw skeleton clips of one split of sessions, or the same part of a packed NTU folder."""
    from xmkd.data import SkeletonDataset

    if packed is not None:
        from xmkd.ntu.pack import PackedNTU

        if split == "all":
            raise XmkdError("packed NTU data is read per part: choose a split, not 'all'")
        part = PackedNTU(packed, split)
        dataset = SkeletonDataset.from_packed(part, labeled_only=labeled_only)
        if not getattr(dataset, "class_names", None):  # the manifest names the classes
            dataset.class_names = part.manifest.get("class_names")
        return _nonempty(dataset, split, str(packed), sessions=False)
    if not sessions:
        raise XmkdError("give the data: --sessions DIR [DIR ...] or --packed DIR")
    dataset = SkeletonDataset(
        list(sessions), split=_split_arg(split), benchmark=benchmark, labeled_only=labeled_only
    )
    return _nonempty(dataset, split, ", ".join(str(s) for s in sessions))


def video_source(
    sessions: Sequence[str | Path],
    modality: str,
    split: str = "student_train",
    benchmark: str = "xsub60",
    labeled_only: bool = False,
    cache: bool = False,
    packed: str | Path | None = None,
) -> Any:
    """The raw videos (RGB for rgb/rgbdiff teachers, stored flow for flow) of one split, of
    sessions or of a packed NTU folder with ingested videos (``prepare-ntu --rgb``)."""
    from xmkd.data import VideoDataset

    if packed is not None:
        from xmkd.data import PackedVideoDataset

        if sessions:
            raise XmkdError("give the videos either as --sessions or as --packed, not both")
        if split == "all":
            raise XmkdError("packed NTU data is read per part: choose a split, not 'all'")
        dataset = PackedVideoDataset(
            packed, split, "flow" if modality == "flow" else "rgb", labeled_only=labeled_only
        )
        return _nonempty(dataset, split, str(packed), sessions=False)
    if not sessions:
        raise XmkdError("the teacher reads videos: give --sessions DIR [DIR ...] or --packed DIR")
    dataset = VideoDataset(
        list(sessions),
        split=_split_arg(split),
        benchmark=benchmark,
        labeled_only=labeled_only,
        modality="flow" if modality == "flow" else "rgb",
        cache=cache,
    )
    return _nonempty(dataset, split, ", ".join(str(s) for s in sessions))


def class_names_of(dataset: Any, num_classes: int | None = None) -> list[str]:
    """The sessions' class names, else ``A001``... for the labels present."""
    names = getattr(dataset, "class_names", None)
    if names:
        return list(names)
    count = num_classes or int(getattr(dataset, "num_classes", 0)) or 1
    return [f"A{i + 1:03d}" for i in range(count)]
