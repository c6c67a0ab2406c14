"""NTU RGB+D videos decoded once into what the TSN teacher trains on (``xmkd prepare-ntu --rgb``).

Each ``<name>_rgb.avi`` of the download (1920x1080, 30 fps) is decoded once, resized to the TSN
scale (short side 256, aspect kept: 456x256; a smaller video keeps its size) and re-encoded as
the per-clip file the teacher already reads in sessions: an MJPEG AVI (``xmkd.recordings``'
writer) at ``<out>/rgb/<name>_rgb.avi``, optionally with its optical flow in the flow-JPEG
convention (``<out>/flow/<name>/flow_x_00001.jpg``, :mod:`capture.flow`). NTU's own image
convention is kept (its videos and skeleton pixel coordinates already agree; nothing is
mirrored).

Why an MJPEG AVI rather than mmaction2's rawframes (one JPEG per frame): every frame of an MJPEG
AVI is a JPEG stored whole in the file, so :func:`read_frames` reads TSN's few sampled frames
straight from the file's chunk table and decodes only those, as fast as rawframes
(``bench/bench_ntu_ingest.py`` measures both), while the dataset stays one file per clip (NTU-60:
~57 thousand files instead of ~5 million) that any player or OpenCV opens.

Video and skeleton frame counts of a pair can differ by a few frames; they are aligned by index
(frame i of both is the same instant) and the stored video keeps the frames both have; the
difference is recorded and reported.

Resumable: a sample is written under ``<out>/.partial/`` and moved into place, then its marker
``<out>/ingested/<name>.json`` is written, atomically and last; only a sample with a marker is
done, so a killed run redoes at most the samples it was working on. Parallel over processes
(one per core, OpenCV single-threaded in each). Before each sample the free space of ``out`` is
checked: the run stops cleanly (everything done is kept) before the disk fills.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmkd.errors import FormatError, XmkdError

__all__ = [
    "FLOW_METHODS",
    "VideoPlan",
    "plan_videos",
    "MARKER_DIR",
    "VideoJob",
    "VideoOptions",
    "VideoSummary",
    "avi_frame_index",
    "estimate_bytes",
    "ingest_videos",
    "read_frames",
    "read_marker",
]

MARKER_DIR = "ingested"
PARTIAL_DIR = ".partial"
FLOW_METHODS = ("none", "dis", "tvl1")
#: Bytes per stored frame at 456x256, measured on the generated NTU-like clips (MJPEG from
#: OpenCV's writer, DIS flow pair as two JPEGs); scaled by area for other sizes. Only for the
#: estimate printed before a run; the run itself watches the real free space.
RGB_BYTES_PER_FRAME = 20_000
FLOW_BYTES_PER_FRAME = 12_000
_REF_AREA = 456 * 256


@dataclass(frozen=True)
class VideoOptions:
    """How videos are stored: the TSN scale and the optional optical flow."""

    short_side: int = 256
    flow: str = "none"  # none | dis | tvl1
    flow_preset: str = "fast"  # DIS preset (capture.flow)
    #: stop before the free space of the output disk falls below this many bytes
    min_free_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if self.flow not in FLOW_METHODS:
            raise XmkdError(f"--flow must be one of {', '.join(FLOW_METHODS)}, got {self.flow!r}")
        if self.short_side < 16:
            raise XmkdError(f"--short-side must be at least 16 pixels, got {self.short_side}")

    def check_flow(self) -> None:
        """Fail now, in one sentence, when the flow method cannot run here (TV-L1 needs
        opencv-contrib)."""
        if self.flow != "none":
            from capture.flow import FlowConfig, _make_algorithm

            _make_algorithm(FlowConfig(method=self.flow, preset=self.flow_preset))


@dataclass(frozen=True)
class VideoJob:
    """One sample to ingest: its name, its video and its .skeleton file."""

    name: str
    video: str
    skeleton: str


@dataclass
class VideoSummary:
    """What :func:`ingest_videos` did."""

    out: Path
    done: list[str] = field(default_factory=list)  # ingested now
    reused: list[str] = field(default_factory=list)  # done by an earlier run
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, error)
    #: video frames - skeleton frames, for pairs where they differ
    differences: dict[str, int] = field(default_factory=dict)
    frames: int = 0  # source frames decoded now
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped early (disk), None when it finished

    @property
    def ingested(self) -> list[str]:
        """Every sample with a stored video (now or earlier), sorted."""
        return sorted({*self.done, *self.reused})

    def lines(self) -> list[str]:
        """A human-readable report."""
        rate = ""
        if self.done and self.seconds > 0:
            rate = (
                f" ({len(self.done) / self.seconds:.2f} videos/s, "
                f"{self.frames / self.seconds:.0f} frames/s)"
            )
        out = [
            f"videos into {self.out}: {len(self.done)} decoded now{rate}, "
            f"{len(self.reused)} done by an earlier run"
        ]
        if self.differences:
            diffs = np.array(list(self.differences.values()))
            out.append(
                f"{len(self.differences)} pairs whose video and skeleton frame counts differ "
                f"(video - skeleton: min {diffs.min():+d}, max {diffs.max():+d}); aligned by "
                "index, the stored video keeps the frames both have"
            )
        out.append(f"{len(self.unreadable)} unreadable videos left out")
        out += [f"  {error}" for _, error in self.unreadable]
        return out

    def manifest(self) -> dict[str, Any]:
        return {
            "ingested": len(self.ingested),
            "unreadable": [{"file": f, "error": e} for f, e in self.unreadable],
            "frame_differences": dict(sorted(self.differences.items())),
        }


@dataclass
class VideoPlan:
    """Which videos of the download a protocol needs, and what was left out before decoding."""

    jobs: list[VideoJob] = field(default_factory=list)
    no_skeleton: list[str] = field(default_factory=list)  # videos without a .skeleton file
    skipped_missing: list[str] = field(default_factory=list)  # on the official missing list
    not_needed: int = 0  # videos of samples the protocol's teacher never reads (e.g. test)
    outside: int = 0  # videos of samples outside the benchmark
    unnamed: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (left out, kept)
    not_files: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def lines(self) -> list[str]:
        out = [f"{len(self.jobs)} videos paired with their .skeleton file by sample name"]
        if self.skipped_missing:
            out.append(
                f"skipped {len(self.skipped_missing)} videos of samples on the official "
                "missing-skeleton list"
            )
        if self.not_needed:
            out.append(
                f"skipped {self.not_needed} videos the protocol's teacher does not read "
                "(test subjects; --video-test adds them)"
            )
        if self.outside:
            out.append(f"ignored {self.outside} videos of samples outside the benchmark")
        if self.no_skeleton:
            shown = ", ".join(self.no_skeleton[:5]) + (" ..." if len(self.no_skeleton) > 5 else "")
            out.append(f"{len(self.no_skeleton)} videos have no .skeleton file: {shown}")
        out += [f"ignored {n}: not named after an NTU sample" for n in self.unnamed]
        out += [f"ignored {d}: the same sample as {k}" for d, k in self.duplicates]
        return out

    def manifest(self) -> dict[str, Any]:
        return {
            "no_skeleton": self.no_skeleton,
            "skipped_missing": self.skipped_missing,
            "not_needed": self.not_needed,
            "outside_benchmark": self.outside,
            "unnamed": self.unnamed,
            "duplicates": [{"file": f, "kept": k} for f, k in self.duplicates],
        }


def video_parts(include_test: bool = False) -> tuple[str, ...]:
    """The protocol parts whose videos are ingested: the teacher learns on Teacher-Train and
    labels Student-Train; the students are tested on skeletons, so test videos are optional."""
    return ("teacher_train", "student_train", "test") if include_test else PROTOCOL_VIDEO_PARTS


PROTOCOL_VIDEO_PARTS = ("teacher_train", "student_train")


def plan_videos(
    skeletons: str | Path,
    rgb: str | Path,
    benchmark: str = "xsub60",
    split: Any = None,
    include_test: bool = False,
) -> VideoPlan:
    """Pair the videos under ``rgb`` with the ``.skeleton`` files under ``skeletons`` by sample
    name and keep those of the protocol parts that need videos (see :func:`video_parts`)."""
    import stat

    from xmkd.ntu.names import SampleName, SampleNameError
    from xmkd.ntu.splits import ProtocolSplit, in_benchmark, missing_skeletons, protocol_split

    rgb = Path(rgb)
    if not benchmark.startswith("xsub"):
        raise XmkdError(
            f"--rgb: the paper's teacher protocol (Teacher-Train / Student-Train) is defined on "
            f"the cross-subject benchmarks; use --benchmark xsub60 or xsub120, not {benchmark}"
        )
    if not rgb.is_dir():
        raise XmkdError(f"the video folder {rgb} does not exist")
    split = split or ProtocolSplit()
    skeleton_of: dict[str, Path] = {}
    for path in sorted(Path(skeletons).rglob("*.skeleton"), key=lambda p: (p.name, str(p))):
        try:
            skeleton_of.setdefault(str(SampleName.from_path(path)), path)
        except SampleNameError:
            continue
    videos = sorted(rgb.rglob("*.avi"), key=lambda p: (p.name, str(p)))
    if not videos:
        raise XmkdError(f"no .avi videos in {rgb}")
    missing = missing_skeletons(benchmark)
    parts = video_parts(include_test)
    plan = VideoPlan()
    kept: dict[str, Path] = {}
    for path in videos:
        try:
            name = SampleName.from_path(path)
        except SampleNameError:
            plan.unnamed.append(str(path))
            continue
        key = str(name)
        if key in missing:
            plan.skipped_missing.append(key)
            continue
        if in_benchmark(name, benchmark) is None:
            plan.outside += 1
            continue
        if protocol_split(name, benchmark, split) not in parts:
            plan.not_needed += 1
            continue
        if key in kept:
            plan.duplicates.append((str(path), str(kept[key])))
            continue
        if key not in skeleton_of:
            plan.no_skeleton.append(key)
            continue
        try:  # a FIFO would hang the decoder: stat only, never open
            if not stat.S_ISREG(path.stat().st_mode):
                plan.not_files.append((str(path), f"{path}: not a regular file"))
                continue
        except OSError as exc:
            plan.not_files.append((str(path), f"{path}: {exc.strerror or exc}"))
            continue
        kept[key] = path
        plan.jobs.append(VideoJob(key, str(path), str(skeleton_of[key])))
    return plan


# ---------------------------------------------------------------------------------------------
# Reading stored clips
def avi_frame_index(path: str | Path) -> list[tuple[int, int]]:
    """(offset, size) of every video frame chunk (``##dc``/``##db``) of an AVI, in order.

    Walks the RIFF chunk headers (a few bytes each; the frame data is not read). An MJPEG
    frame chunk is a whole JPEG: :func:`read_frames` decodes chosen frames from it directly.
    """
    path = Path(path)
    frames: list[tuple[int, int]] = []
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)

        def walk(start: int, stop: int, in_movi: bool) -> None:
            pos = start
            while pos + 8 <= stop:
                fh.seek(pos)
                head = fh.read(12)
                cid, size = head[:4], struct.unpack("<I", head[4:8])[0]
                if cid in (b"RIFF", b"LIST"):
                    kind = head[8:12]
                    walk(pos + 12, min(pos + 8 + size, stop), in_movi or kind in (b"movi", b"rec "))
                elif in_movi and cid[2:] in (b"dc", b"db"):
                    if pos + 8 + size > stop:
                        raise FormatError(path, f"frame {len(frames) + 1} is cut short")
                    frames.append((pos + 8, size))
                pos += 8 + size + (size & 1)

        walk(0, end, False)
    return frames


def read_frames(
    path: str | Path,
    indices: Sequence[int],
    index: Sequence[tuple[int, int]] | np.ndarray | None = None,
) -> np.ndarray:
    """Frames ``indices`` (repeats allowed, any order) of a stored MJPEG AVI: (n, H, W, 3) uint8
    BGR. Only those frames are read and decoded; an AVI whose chunks are not JPEG frames is
    read through OpenCV's decoder instead. ``index``: the file's :func:`avi_frame_index`, when
    the caller keeps it (walking the chunk headers costs ~1 ms a call, a tenth of decoding a
    TSN snippet's frames)."""
    import cv2

    path = Path(path)
    if index is None:
        index = avi_frame_index(path)
    wanted = sorted(set(int(i) for i in indices))
    if wanted and (wanted[0] < 0 or wanted[-1] >= len(index)):
        raise FormatError(path, f"has {len(index)} frames; frame {wanted[-1]} was asked for")
    decoded: dict[int, np.ndarray] = {}
    with open(path, "rb") as fh:
        for i in wanted:
            offset, size = (int(v) for v in index[i])
            fh.seek(offset)
            image = cv2.imdecode(np.frombuffer(fh.read(size), np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                return _read_frames_opencv(path, indices)
            decoded[i] = image
    return np.stack([decoded[int(i)] for i in indices])


def _read_frames_opencv(path: Path, indices: Sequence[int]) -> np.ndarray:
    import cv2

    from xmkd.recordings import _open_capture

    cap = _open_capture(path)
    decoded: dict[int, np.ndarray] = {}
    try:
        for i in sorted(set(int(i) for i in indices)):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                raise FormatError(path, f"frame {i} cannot be decoded")
            decoded[i] = frame
    finally:
        cap.release()
    return np.stack([decoded[int(i)] for i in indices])


def marker_path(out: str | Path, name: str) -> Path:
    return Path(out) / MARKER_DIR / f"{name}.json"


def read_marker(out: str | Path, name: str) -> dict[str, Any] | None:
    """The done-marker of a sample, or None when it is not (completely) ingested."""
    path = marker_path(out, name)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("name") == name else None


def _is_done(out: Path, name: str, options: VideoOptions) -> dict[str, Any] | None:
    from xmkd.recordings import flow_dir, video_path

    marker = read_marker(out, name)
    if marker is None or marker.get("short_side") != options.short_side:
        return None
    if not video_path(out, name).is_file():
        return None
    if options.flow != "none":
        if marker.get("flow") in (None, "none") or not flow_dir(out, name).is_dir():
            return None
    return marker


# ---------------------------------------------------------------------------------------------
# Ingesting one sample (in a worker process)
def _ingest_one(job: VideoJob, out: str, options: VideoOptions) -> dict[str, Any]:
    """Decode, resize, store (and flow) one video; returns its marker, or {"error": ...}."""
    import cv2

    from capture.flow import FlowComputer, FlowConfig, tsn_size
    from xmkd.recordings import (
        VideoWriter,
        atomic_write_text,
        flow_dir,
        probe_video,
        skeleton_frame_count,
        video_path,
        write_flow,
    )

    cv2.setNumThreads(1)  # one process per core
    out_dir = Path(out)
    partial = out_dir / PARTIAL_DIR / job.name
    try:
        try:
            info = probe_video(job.video)
        except XmkdError as err:
            return {"error": str(err)}
        try:
            skeleton_frames = skeleton_frame_count(job.skeleton)
        except (OSError, XmkdError):
            skeleton_frames = None  # the skeleton packer reports a malformed file
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        tmp_video = partial / f"{job.name}_rgb.avi"
        cap = cv2.VideoCapture(job.video)
        if not cap.isOpened():
            return {"error": f"{job.video}: OpenCV cannot open this video"}
        keep = skeleton_frames if skeleton_frames else None  # align by index: frames both have
        writer = computer = None
        flows: list[np.ndarray] = []
        decoded = stored = 0
        try:
            while keep is None or stored < keep:
                ok, frame = cap.read()
                if not ok:
                    break
                decoded += 1
                h, w = frame.shape[:2]
                if writer is None:
                    size = (
                        tsn_size(w, h, options.short_side)
                        if min(w, h) > options.short_side
                        else (w, h)
                    )
                    writer = VideoWriter(tmp_video, info.fps or 30.0, *size)
                    if options.flow != "none":
                        computer = FlowComputer(
                            FlowConfig(
                                method=options.flow,
                                preset=options.flow_preset,
                                short_side=min(size),
                            )
                        )
                if (w, h) != writer.size:
                    frame = _shrink(frame, writer.size)
                writer.write(frame)
                stored += 1
                if computer is not None:
                    flow = computer.push(frame)
                    if flow is not None:
                        flows.append(flow)
        finally:
            cap.release()
            if writer is not None:
                writer.close()
        if stored == 0:
            return {"error": f"{job.video}: the video holds no decodable frame"}
        # while the source has frames left, it is not over: count them for the report
        video_frames = decoded
        if keep is not None and stored == keep:
            video_frames = max(decoded, info.frames)
        written = len(avi_frame_index(tmp_video))
        if written != stored:  # OpenCV's writer fails silently, e.g. on a full disk
            return {
                "error": f"{tmp_video}: only {written} of {stored} frames were written "
                "(is the disk full?)",
                "disk": True,
            }
        pairs = 0
        if computer is not None:
            pairs = write_flow(partial / "flow", flows, quality=95)
        final_video = video_path(out_dir, job.name)
        final_video.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_video, final_video)
        if computer is not None:
            final_flow = flow_dir(out_dir, job.name)
            if final_flow.exists():
                shutil.rmtree(final_flow)
            final_flow.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial / "flow", final_flow)
        marker = {
            "name": job.name,
            "source": job.video,
            "frames": stored,
            "video_frames": video_frames,
            "skeleton_frames": skeleton_frames,
            "width": writer.size[0],
            "height": writer.size[1],
            "fps": info.fps,
            "short_side": options.short_side,
            "flow": None if options.flow == "none" else options.flow,
            "flow_pairs": pairs,
        }
        # the marker last: a sample without one is not done, whatever else is on the disk
        atomic_write_text(marker_path(out_dir, job.name), json.dumps(marker) + "\n", fsync=False)
        marker["decoded"] = decoded
        return marker
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return {"error": f"{out}: the disk is full", "disk": True}
        return {"error": f"{job.video}: {exc.strerror or exc}"}
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _shrink(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average ``frame`` down to ``size`` (w, h): first by the largest whole factor (OpenCV's
    fast integer path), then the rest; half the time of one INTER_AREA from 1920x1080 to 456x256
    (measured), 0.5 grey levels apart on average."""
    import cv2

    h, w = frame.shape[:2]
    k = min(w // size[0], h // size[1])
    if k >= 2:
        frame = cv2.resize(frame, (w // k, h // k), interpolation=cv2.INTER_AREA)
    if frame.shape[1::-1] != tuple(size):
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return frame


def _worker(args: tuple[VideoJob, str, VideoOptions]) -> dict[str, Any]:
    return _ingest_one(*args)


# ---------------------------------------------------------------------------------------------
# The run
def estimate_bytes(frames: int, options: VideoOptions, width: int = 456, height: int = 256) -> int:
    """Disk bytes that ``frames`` stored frames take (see :data:`RGB_BYTES_PER_FRAME`)."""
    per = RGB_BYTES_PER_FRAME + (FLOW_BYTES_PER_FRAME if options.flow != "none" else 0)
    return int(frames * per * (width * height) / _REF_AREA)


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def ingest_videos(
    jobs: Sequence[VideoJob],
    out: str | Path,
    options: VideoOptions = VideoOptions(),
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> VideoSummary:
    """Ingest the videos of ``jobs`` into ``out`` (see the module docs); resumable.

    Stops cleanly (``summary.stopped`` says why, everything done is kept) when the free space
    of ``out`` would fall below ``options.min_free_bytes``.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm import tqdm

    from xmkd.recordings import skeleton_frame_count

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)  # what a killed run left half-written
    summary = VideoSummary(out)
    todo: list[VideoJob] = []
    for job in jobs:
        marker = _is_done(out, job.name, options)
        if marker is None:
            todo.append(job)
            continue
        summary.reused.append(job.name)
        _note_difference(summary, marker)

    frames_todo = 0
    for job in todo:
        try:
            frames_todo += skeleton_frame_count(job.skeleton)
        except (OSError, XmkdError):
            pass
    need = estimate_bytes(frames_todo, options)
    free = _free_bytes(out)
    log(
        f"{len(todo)} videos to ingest ({len(summary.reused)} done earlier): about "
        f"{_gb(need)} needed, {_gb(free)} free on {out}"
        + (" (not enough: the run will stop before the disk is full)" if need > free else "")
    )
    if not todo:
        return summary

    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    bar = tqdm(
        total=len(jobs),
        initial=len(summary.reused),
        desc="prepare-ntu videos",
        unit="video",
        disable=not progress,
    )
    t0 = time.perf_counter()
    pending = list(reversed(todo))

    def handle(job: VideoJob, result: dict[str, Any]) -> None:
        bar.update()
        if "error" in result:
            if result.get("disk"):
                summary.stopped = summary.stopped or result["error"]
            else:
                summary.unreadable.append((job.video, result["error"]))
            return
        summary.done.append(job.name)
        summary.frames += int(result.get("decoded", result["frames"]))
        _note_difference(summary, result)
        bar.set_postfix(frames_s=f"{summary.frames / max(time.perf_counter() - t0, 1e-9):.0f}")

    def room_left() -> bool:
        free = _free_bytes(out)
        if free < options.min_free_bytes:
            keep = _gb(options.min_free_bytes)
            summary.stopped = (
                f"{_gb(free)} left on the disk of {out}, less than the {keep} kept free"
            )
            return False
        return True

    try:
        if workers == 1:
            while pending and summary.stopped is None and room_left():
                job = pending.pop()
                handle(job, _ingest_one(job, str(out), options))
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                running: dict[Any, VideoJob] = {}
                while pending or running:
                    while (
                        pending
                        and len(running) < 2 * workers
                        and summary.stopped is None
                        and room_left()
                    ):
                        job = pending.pop()
                        running[pool.submit(_worker, (job, str(out), options))] = job
                    if not running:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        handle(running.pop(future), future.result())
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
        shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    return summary


def _note_difference(summary: VideoSummary, marker: dict[str, Any]) -> None:
    skeleton = marker.get("skeleton_frames")
    if skeleton:
        diff = int(marker.get("video_frames", marker["frames"])) - int(skeleton)
        if diff:
            summary.differences[marker["name"]] = diff
