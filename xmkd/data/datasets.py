"""PyTorch datasets over sessions (the recordings layout) and over packed NTU RGB+D.

Every dataset yields ``(x, label, index)`` (the trainers' contract), or ``(x, label, index,
name)`` with ``return_name=True``; ``label`` is the 0-based class or -1 for an unlabeled clip
(``A000``), ``index`` the position in the dataset and ``dataset.names[index]`` the NTU sample
name (teacher labels are keyed by it).

- :class:`SkeletonDataset`: ``x`` is the student input, float32 ``(3, T, 25, M)`` from
  :func:`xmkd.ntu.to_model_array` (x y z metres, bodies chosen by ``selection``), zero-padded to
  the longest clip (or cropped/padded to ``max_frames``), or whatever ``transform(x,
  valid_frames)`` returns (the models' window preprocessing, e.g. ``functools.partial(
  xmkd.preprocess.prepare_window, spec=spec, train=True)``). Skeletons are parsed once, at
  construction, and kept in memory (a clip is ~30 KB), so workers (``num_workers > 0``) share
  them by fork and never re-parse.
- :class:`VideoDataset`: ``x`` is the teacher input: the clip's decoded frames uint8
  ``(T, H, W, 3)`` in **RGB** order (``modality="rgb"``), its stored optical flow uint8
  ``(T - 1, H, W, 2)`` (x, y quantised as in the layout, ``modality="flow"``), or a dict of both
  (``"rgb+flow"``); or what ``transform(x)`` returns (TSN's segment sampling, e.g.
  ``functools.partial(xmkd.models.tsn.teacher_input, spec=spec, train=True)``). Frames are
  decoded per item (cheap at these sizes) unless ``cache=True``.

- :class:`PackedVideoDataset`: the teacher's clips of a packed NTU folder whose videos were
  ingested (``xmkd prepare-ntu --rgb``); the same items as :class:`VideoDataset`, and
  :meth:`PackedVideoDataset.teacher_input` decodes only the frames TSN samples.

Filtering: ``split`` keeps the clips of one protocol split (:func:`xmkd.ntu.splits.protocol_split`:
"teacher_train", "student_train", "test"), ``names`` an explicit list, ``labeled_only`` drops
``A000`` clips. Filters combine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from xmkd.errors import FormatError, XmkdError
from xmkd.ntu.splits import PROTOCOL_PARTS
from xmkd.recordings import Clip, Session

SessionLike = str | Path | Session
SPLITS = PROTOCOL_PARTS  # the paper's protocol parts, defined once in xmkd.ntu.splits


def _as_sessions(sources: SessionLike | Iterable[SessionLike]) -> list[Session]:
    if isinstance(sources, (str, Path, Session)):
        sources = [sources]
    sessions = [s if isinstance(s, Session) else Session.open(s) for s in sources]
    if not sessions:
        raise XmkdError("no session given")
    return sessions


def _keep(
    names: Sequence[str],
    split: str | None,
    benchmark: str,
    wanted: Iterable[str] | None,
    labeled_only: bool,
) -> list[int]:
    """Indices of ``names`` passing the filters."""
    from xmkd.ntu import SampleName

    if split is not None and split not in SPLITS:
        raise XmkdError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    wanted_set = set(wanted) if wanted is not None else None
    if split is not None:
        from xmkd.ntu.splits import protocol_split
    keep = []
    for i, name in enumerate(names):
        if wanted_set is not None and name not in wanted_set:
            continue
        if labeled_only and SampleName.parse(name).action == 0:
            continue
        if split is not None and protocol_split(name, benchmark=benchmark) != split:
            continue
        keep.append(i)
    if wanted_set is not None:
        missing = wanted_set - set(names)
        if missing:
            raise XmkdError(
                f"{len(missing)} requested sample(s) are not in the data, e.g. {sorted(missing)[0]}"
            )
    return keep


def _session_clips(
    sessions: list[Session],
    split: str | None,
    benchmark: str,
    names: Iterable[str] | None,
    labeled_only: bool,
) -> list[Clip]:
    clips = [c for s in sessions for c in s.clips]
    all_names = [c.name for c in clips]
    if len(set(all_names)) != len(all_names):
        dup = next(n for n in all_names if all_names.count(n) > 1)
        raise XmkdError(f"clip {dup} appears in more than one of the given sessions")
    return [clips[i] for i in _keep(all_names, split, benchmark, names, labeled_only)]


def _class_names(sessions: list[Session]) -> list[str] | None:
    known = [s.class_names for s in sessions if s.class_names is not None]
    if not known:
        return None
    longest = max(known, key=len)
    for other in known:
        if longest[: len(other)] != other:
            raise XmkdError("the given sessions name their classes differently")
    return longest


class _LabeledClips(Dataset):
    """What every dataset here has beside its items: ``names``, ``labels`` (-1 unlabeled) and
    ``class_names`` (None when the data does not name its classes)."""

    names: list[str]
    labels: np.ndarray
    class_names: list[str] | None

    @property
    def num_classes(self) -> int:
        """Classes named by the data, else 1 + the largest label present."""
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.labels.max(initial=-1)) + 1


class SkeletonDataset(_LabeledClips):
    """Skeleton clips of one or more sessions, for the students (see the module docstring).

    Args:
        sources: session folder(s) or opened :class:`Session` objects.
        split, benchmark, names, labeled_only: filters (see the module docstring).
        max_bodies: M bodies per frame (2, as NTU models expect).
        max_frames: T of every item (crop/zero-pad); None: the longest selected clip.
        selection: "motion" (track by body ID, keep the most moving) or "first" (the reference).
        transform: ``transform(x, valid_frames) -> x`` applied per item.
        return_name: also yield the sample name.
        workers: threads used to parse the skeleton files at construction.
    """

    def __init__(
        self,
        sources: SessionLike | Iterable[SessionLike],
        split: str | None = None,
        benchmark: str = "xsub60",
        names: Iterable[str] | None = None,
        labeled_only: bool = False,
        max_bodies: int = 2,
        max_frames: int | None = None,
        selection: str = "motion",
        transform: Callable[[np.ndarray, int], Any] | None = None,
        return_name: bool = False,
        workers: int = 4,
    ) -> None:
        from xmkd.ntu import read_skeleton, to_model_array

        self.sessions = _as_sessions(sources)
        self.clips = _session_clips(self.sessions, split, benchmark, names, labeled_only)
        self.names = [c.name for c in self.clips]
        self.labels = np.array([c.label for c in self.clips], dtype=np.int64)
        self.class_names = _class_names(self.sessions)
        self.transform = transform
        self.return_name = return_name
        # how bodies were chosen: a live stream must choose them alike (checkpoint "stream")
        self.selection, self.max_bodies = selection, max_bodies

        def load(clip: Clip) -> tuple[np.ndarray, int]:
            return to_model_array(read_skeleton(clip.skeleton), max_bodies, None, selection)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            arrays = list(pool.map(load, self.clips))
        length = max_frames or max((a.shape[1] for a, _ in arrays), default=1)
        self.max_frames = length
        self.valid_frames = np.array([min(n, length) for _, n in arrays], dtype=np.int64)
        # One contiguous block: cheap to share with forked DataLoader workers.
        self.data = np.zeros((len(arrays), 3, length, 25, max_bodies), dtype=np.float32)
        for i, (a, _) in enumerate(arrays):
            t = min(a.shape[1], length)
            self.data[i, :, :t] = a[:, :t]

    @classmethod
    def from_packed(
        cls,
        packed: Any,
        split: str | None = None,
        names: Iterable[str] | None = None,
        labeled_only: bool = False,
        transform: Callable[[np.ndarray, int], Any] | None = None,
        return_name: bool = False,
    ) -> PackedSkeletonDataset:
        """A dataset over packed NTU arrays (:class:`PackedSkeletonDataset`)."""
        return PackedSkeletonDataset(packed, split, names, labeled_only, transform, return_name)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        x = self.data[index]
        if self.transform is not None:
            x = self.transform(x.copy(), int(self.valid_frames[index]))
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        item = (x, int(self.labels[index]), int(index))
        return (*item, self.names[index]) if self.return_name else item


class PackedSkeletonDataset(_LabeledClips):
    """Packed NTU RGB+D arrays (``xmkd prepare-ntu``), memory-mapped; same items as
    :class:`SkeletonDataset`.

    ``packed`` is an opened :class:`xmkd.ntu.pack.PackedNTU` or a packed folder, in which case
    ``split`` names the part to open ("train", "test", "teacher_train", "student_train"). With an
    opened part, a ``split`` other than the part's keeps the rows of that protocol split (e.g.
    "teacher_train" rows of a "train" part)."""

    def __init__(
        self,
        packed: Any,
        split: str | None = None,
        names: Iterable[str] | None = None,
        labeled_only: bool = False,
        transform: Callable[[np.ndarray, int], Any] | None = None,
        return_name: bool = False,
    ) -> None:
        from xmkd.ntu.pack import PackedNTU

        if not isinstance(packed, PackedNTU):
            if split is None:
                raise XmkdError(f"name the part of {packed} to read (split=train, test, ...)")
            packed = PackedNTU(packed, split)
        self.packed = packed
        all_names = [str(n) for n in packed.names]
        filter_split = None if split in (None, packed.part) else split
        benchmark = packed.benchmark
        rows = _keep(all_names, filter_split, benchmark, names, labeled_only)
        self.rows = np.array(rows, dtype=np.int64)
        self.names = [all_names[i] for i in rows]
        self.labels = np.asarray(packed.labels, dtype=np.int64)[self.rows]
        self.valid_frames = np.asarray(packed.valid_frames, dtype=np.int64)[self.rows]
        self.class_names = packed.manifest.get("class_names")
        self.transform = transform
        self.return_name = return_name

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        x = np.array(self.packed.data[self.rows[index]], dtype=np.float32)  # copy off the mmap
        if self.transform is not None:
            x = self.transform(x, int(self.valid_frames[index]))
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        item = (x, int(self.labels[index]), int(index))
        return (*item, self.names[index]) if self.return_name else item


VIDEO_MODALITIES = ("rgb", "flow", "rgb+flow")


class VideoDataset(_LabeledClips):
    """Video clips of one or more sessions, for the teacher (see the module docstring).

    Args:
        sources, split, benchmark, names, labeled_only: as :class:`SkeletonDataset`.
        modality: "rgb" (frames, RGB order), "flow" (stored flow) or "rgb+flow" (dict of both).
        transform: ``transform(x) -> x`` applied per item.
        cache: keep decoded items in memory (per process; for small sets and many epochs).
        return_name: also yield the sample name.
    """

    def __init__(
        self,
        sources: SessionLike | Iterable[SessionLike],
        split: str | None = None,
        benchmark: str = "xsub60",
        names: Iterable[str] | None = None,
        labeled_only: bool = False,
        modality: str = "rgb",
        transform: Callable[[Any], Any] | None = None,
        cache: bool = False,
        return_name: bool = False,
    ) -> None:
        if modality not in VIDEO_MODALITIES:
            raise XmkdError(f"unknown modality {modality!r}; choose one of {VIDEO_MODALITIES}")
        self.sessions = _as_sessions(sources)
        self.clips = _session_clips(self.sessions, split, benchmark, names, labeled_only)
        self.names = [c.name for c in self.clips]
        self.labels = np.array([c.label for c in self.clips], dtype=np.int64)
        self.class_names = _class_names(self.sessions)
        self.modality = modality
        self.transform = transform
        self.return_name = return_name
        self._cache: dict[int, Any] | None = {} if cache else None
        for clip in self.clips:  # fail now, naming the clip, rather than in a worker later
            if "rgb" in modality and not clip.has_video:
                raise XmkdError(f"clip {clip.name} has no video ({clip.video} is missing)")
            if "flow" in modality and not clip.has_flow:
                raise XmkdError(
                    f"clip {clip.name} has no optical flow in {clip.flow}; compute it with "
                    "`xmkd flow SESSION` (or generate synthetic data with --flow)"
                )

    def __len__(self) -> int:
        return len(self.names)

    def fps(self, index: int) -> float | None:
        """Frame rate of clip ``index`` (its own, else its session's; None if unknown)."""
        clip = self.clips[index]
        if clip.fps:
            return float(clip.fps)
        session_fps = next(
            (s.fps for s in self.sessions if s.path == clip.session_dir and s.fps), None
        )
        return float(session_fps) if session_fps else None

    def frame_count(self, index: int) -> int:
        """Frames of clip ``index`` (as its session lists them)."""
        return int(self.clips[index].frames)

    def read_frames(self, index: int, indices: np.ndarray) -> np.ndarray:
        """RGB frames ``indices`` (uint8 (len(indices), H, W, 3)) of clip ``index``; what the
        pretrained teachers read (the same call decodes only those frames of packed NTU)."""
        frames = self.load(index)
        if isinstance(frames, dict):
            frames = frames["rgb"]
        return frames[np.clip(np.asarray(indices, dtype=np.int64), 0, len(frames) - 1)]

    def load(self, index: int) -> Any:
        """The untransformed item ``x`` of clip ``index``."""
        from xmkd.recordings import read_flow, read_video

        if self._cache is not None and index in self._cache:
            return self._cache[index]
        clip = self.clips[index]
        out: dict[str, np.ndarray] = {}
        if "rgb" in self.modality:
            out["rgb"] = np.ascontiguousarray(read_video(clip.video)[..., ::-1])  # BGR -> RGB
        if "flow" in self.modality:
            out["flow"] = read_flow(clip.flow)
        x = out if self.modality == "rgb+flow" else out[self.modality]
        if self._cache is not None:
            self._cache[index] = x
        return x

    def __getitem__(self, index: int):
        x = self.load(index)
        if self.transform is not None:
            x = self.transform(x)
        elif isinstance(x, dict):
            x = {k: torch.from_numpy(v.copy()) for k, v in x.items()}
        else:
            x = torch.from_numpy(x.copy())
        item = (x, int(self.labels[index]), int(index))
        return (*item, self.names[index]) if self.return_name else item


class PackedVideoDataset(_LabeledClips):
    """The ingested videos of one part of a packed NTU folder (``xmkd prepare-ntu --rgb``).

    Items as :class:`VideoDataset` (``modality`` "rgb" or "flow"); the clips are the part's
    samples (``{part}_names.txt``), each stored as ``rgb/<name>_rgb.avi`` (+ ``flow/<name>/``).
    ``load`` decodes a whole clip; :meth:`teacher_input` decodes only the frames that TSN's
    segment sampling picks (what :class:`xmkd.train.inputs.TeacherClips` uses).
    """

    def __init__(
        self,
        root: str | Path,
        part: str,
        modality: str = "rgb",
        labeled_only: bool = False,
        return_name: bool = False,
    ) -> None:
        from xmkd.ntu.pack import PackedNTU
        from xmkd.ntu.videos import read_marker
        from xmkd.recordings import flow_dir, video_path

        if modality not in ("rgb", "flow"):
            raise XmkdError(f"packed NTU videos are read as rgb or flow, not {modality!r}")
        packed = PackedNTU(root, part)
        videos = packed.manifest.get("videos")
        if not videos:
            raise XmkdError(
                f"{root} holds no videos: run xmkd prepare-ntu with --rgb DIR (the folder of "
                "NTU's _rgb.avi files) into it"
            )
        if part not in videos.get("parts", ()):
            raise XmkdError(
                f"{root}: the {part} videos were not ingested (only "
                f"{', '.join(videos.get('parts', ()))}); run prepare-ntu again with --video-test"
            )
        if modality == "flow" and not videos.get("flow"):
            raise XmkdError(
                f"{root} holds no optical flow: run xmkd prepare-ntu again with --flow dis "
                "(or tvl1); the stored videos are reused"
            )
        self.root = Path(root)
        keep = _keep(list(packed.names), None, packed.benchmark, None, labeled_only)
        self.names = [str(packed.names[i]) for i in keep]
        self.labels = np.asarray(packed.labels, dtype=np.int64)[keep]
        self.class_names = packed.manifest.get("class_names")
        self.modality = modality
        self.return_name = return_name
        self.videos = [video_path(self.root, n) for n in self.names]
        self.flows = [flow_dir(self.root, n) for n in self.names]
        self.frames = np.zeros(len(self.names), dtype=np.int64)
        for i, name in enumerate(self.names):  # fail now, naming the clip, not in a worker later
            marker = read_marker(self.root, name)
            if marker is None or not self.videos[i].is_file():
                raise XmkdError(
                    f"{root}: the video of {name} is not (completely) stored; run xmkd "
                    "prepare-ntu again with the same options to finish it"
                )
            if modality == "flow" and not marker.get("flow_pairs"):
                raise XmkdError(f"{root}: {name} has no optical flow stored in {self.flows[i]}")
            self.frames[i] = marker["flow_pairs"] if modality == "flow" else marker["frames"]
        # Each video's AVI chunk table, (offset, size) per frame, read once per process: a
        # stored clip never changes while it is read, and walking the chunk headers again on
        # every item cost ~1 ms of the ~10 ms that decoding TSN's sampled frames takes.
        # int64 (frames, 2): ~1.6 KB per 100-frame clip, per loader worker.
        self._chunks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.names)

    def fps(self, index: int) -> float:
        """NTU RGB+D's videos are 30 fps."""
        return 30.0

    def _chunk_table(self, index: int) -> np.ndarray:
        from xmkd.ntu.videos import avi_frame_index

        table = self._chunks.get(index)
        if table is None:
            table = np.array(avi_frame_index(self.videos[index]), dtype=np.int64).reshape(-1, 2)
            self._chunks[index] = table
        return table

    def _read(self, index: int, indices: np.ndarray, bgr: bool = False) -> np.ndarray:
        """Frames ``indices``: RGB (or, with ``bgr``, as decoded) or stored flow."""
        import cv2

        from xmkd.ntu.videos import read_frames
        from xmkd.recordings import flow_paths

        if self.modality == "rgb":
            frames = read_frames(self.videos[index], indices, self._chunk_table(index))
            return frames if bgr else np.ascontiguousarray(frames[..., ::-1])  # BGR -> RGB
        pairs = []
        for i in indices:  # flow pair i + 1 is the flow from frame i to frame i + 1
            px, py = flow_paths(self.flows[index], int(i) + 1)
            x = cv2.imread(str(px), cv2.IMREAD_GRAYSCALE)
            y = cv2.imread(str(py), cv2.IMREAD_GRAYSCALE)
            if x is None or y is None:
                raise FormatError(px if x is None else py, "is not a readable JPEG image")
            pairs.append(np.stack([x, y], axis=-1))
        return np.stack(pairs)

    def frame_count(self, index: int) -> int:
        """Frames (or flow pairs) stored for clip ``index``."""
        return int(self.frames[index])

    def read_frames(self, index: int, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` of clip ``index`` (RGB, or stored flow), decoding only those."""
        indices = np.clip(np.asarray(indices, dtype=np.int64), 0, int(self.frames[index]) - 1)
        return self._read(index, indices)

    def load(self, index: int) -> np.ndarray:
        """The untransformed clip: RGB frames (T, H, W, 3) or stored flow (T - 1, H, W, 2)."""
        return self._read(index, np.arange(int(self.frames[index])))

    def teacher_input(
        self, index: int, spec: Any, train: bool = False, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """``xmkd.models.tsn.teacher_input(self.load(index), ...)``, decoding only the sampled
        frames (3-25 of a clip's ~100): the same tensor for the same ``rng``."""
        from xmkd.models.tsn import sample_segments, snippets_input

        if train and rng is None:
            rng = np.random.default_rng()
        idx = sample_segments(int(self.frames[index]), spec.num_segments, spec.span, train, rng)
        bgr = self.modality == "rgb"  # swapped to RGB after cropping, on the small arrays
        return snippets_input(self._read(index, idx.reshape(-1), bgr), spec, train, rng, bgr)

    def __getitem__(self, index: int):
        x = torch.from_numpy(self.load(index))
        item = (x, int(self.labels[index]), int(index))
        return (*item, self.names[index]) if self.return_name else item
