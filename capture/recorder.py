"""The crash-safe recorder: sources -> NTU-named (video, skeleton) clips in a session folder.

Pipeline per device (each device is one NTU camera id; several run in parallel)::

    capture thread --bounded queue--> writer thread --chunks--> partial/<name>/ --finalizer--> clip
      (never blocks)                    JPEG-encodes, cuts clips,    chunk_000001.npz ...      files
                                        feeds the flow worker

* The capture thread only iterates the source and ``put_nowait``s frames; if the writer ever
  falls so far behind that the queue is full the frame is counted (``queue_overflow``) instead of
  blocking the device (a blocked Azure Kinect drops frames itself). A source that is not live
  (``realtime`` False: a file or generator played as fast as it reads, e.g. ``video:FILE`` or
  ``mkv:FILE``) waits for room instead: nothing is lost by waiting, and a reader faster than the
  writer would otherwise lose every frame past the queue's length. A skeleton estimator never
  runs on this thread for a live source: sources run it on their own thread and hand frames the
  latest estimate (`capture.camera.EstimatorWorker`); a file estimates each frame before
  yielding it.
* The writer JPEG-encodes each frame once and appends it with its bodies and timestamps to every
  open clip; every ``chunk_seconds`` (0.5 s) a clip's new frames are written as one chunk file
  (temporary file + fsync + rename), so ``kill -9`` loses at most the last second (the last
  half-second chunk plus the frames still queued).
* A finished clip is turned into the layout's files by `finalize_partial` (the same function
  ``xmkd recover`` runs on what a crash left behind): the JPEGs are remuxed into the MJPEG AVI
  without re-encoding, the bodies written as an NTU ``.skeleton``, the timestamps as CSV, the flow
  (from the live worker, or computed offline when it is incomplete) moved into ``flow/``, and the
  clip appended to ``session.json``.
* Disk guard: before each chunk the free space of the session's filesystem is checked; below
  ``min_free_mb`` the recording stops cleanly (clips so far finalized) and says why.
* Dropped frames are counted from device timestamps (gaps > 1.5 frame periods) per clip and per
  camera and written to ``session.json``.

Clip names are ``S{setup}C{camera}P{performer}R{replication}A000``; the replication number counts
clips up from ``--replication`` (skipping names the session already has), so every clip of a
session has its own NTU name.
"""

from __future__ import annotations

import errno
import io
import json
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from capture.flow import FlowConfig, FlowWorker, write_clip_flow
from capture.frames import Body, Frame, Source, bodies_to_sequence, count_dropped
from xmkd.errors import XmkdError
from xmkd.skeleton import NUM_JOINTS

MODES = ("takes", "continuous", "presence")
CHUNK_PREFIX = "chunk_"
META_FILE = "meta.json"
LOCK_FILE = "recording.pid"  # in partial/: the recorder's pid while it runs
#: How a recording ended (``stats()["outcome"]``): the sources ended or the time was up; Ctrl+C;
#: SIGTERM; the disk (guard or ENOSPC) stopped it early; a device or write failed.
OUTCOMES = ("done", "interrupted", "terminated", "disk", "failed")
#: How long ``stop()`` waits for a source to leave its frame iterator before abandoning it.
STOP_GRACE_SECONDS = 10.0


@dataclass
class RecordConfig:
    """Recorder settings (``xmkd record`` flags map onto these)."""

    setup: int = 1
    performer: int = 1
    replication: int = 1  # first replication number; each further clip counts up
    mode: str = "continuous"  # takes | continuous (fixed windows) | presence (bodies present)
    clip_seconds: float = 10.0  # continuous: window length; presence: longest clip
    stride_seconds: float | None = None  # continuous: window start spacing (None: clip_seconds)
    presence_min_seconds: float = 1.0  # presence: shorter clips are discarded
    presence_gap_seconds: float = 0.5  # presence: a clip ends after this long without bodies
    max_seconds: float | None = None  # stop the whole recording after this long (None: never)
    flow: bool = True  # live optical flow (worker process)
    flow_config: FlowConfig = field(default_factory=FlowConfig)
    jpeg_quality: int = 90
    chunk_seconds: float = 0.5  # crash-safety granularity (what a kill -9 can lose)
    min_free_mb: float = 1024.0  # disk guard: stop below this much free space
    queue_frames: int = 256  # capture -> writer queue (about 8 s at 30 fps)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise XmkdError(f"unknown recording mode {self.mode!r}; choose one of {MODES}")
        for name in ("setup", "performer", "replication"):
            value = getattr(self, name)
            if not 1 <= value <= 999:
                raise XmkdError(f"--{name} must be between 1 and 999 (NTU names), got {value}")
        if self.clip_seconds <= 0 or (self.stride_seconds is not None and self.stride_seconds <= 0):
            raise XmkdError("--clip-seconds and --stride must be positive")


# ------------------------------------------------------------------------------------------
# Partial clips (the crash-safe on-disk journal)
def clip_name(setup: int, camera: int, performer: int, replication: int, action: int = 0) -> str:
    from xmkd.ntu import SampleName

    return str(SampleName(setup, camera, performer, replication, action))


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


class PartialClip:
    """A clip being recorded: ``partial/<name>/meta.json`` + one ``chunk_NNNNNN.npz`` per
    flush. Only complete chunk files are ever visible (written to ``.tmp`` then renamed)."""

    def __init__(self, session_dir: Path, name: str, fps: float, camera: int, meta: dict):
        from xmkd.recordings import atomic_write_text, partial_dir

        self.session_dir = session_dir
        self.name = name
        self.fps = fps
        self.camera = camera
        self.dir = partial_dir(session_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.flow_dir = self.dir / "flow"
        self.meta = {"name": name, "fps": fps, "camera": camera, **meta}
        atomic_write_text(self.dir / META_FILE, json.dumps(self.meta, indent=1))
        self.frames = 0  # frames added so far
        self.chunks = 0
        self._buf: list[tuple[bytes, int, int, list[Body]]] = []
        self._last_jpeg = b""
        self.bytes_written = 0

    def add(self, jpeg: bytes | None, frame: Frame) -> int:
        """Append a frame; returns its 1-based number in the clip."""
        if jpeg is None:  # a capture without colour: repeat the last image to stay in sync
            jpeg = self._last_jpeg
        self._last_jpeg = jpeg
        self._buf.append((jpeg, frame.device_usec, frame.host_nsec, frame.bodies))
        self.frames += 1
        return self.frames

    @property
    def pending(self) -> int:
        return len(self._buf)

    @property
    def pending_bytes(self) -> int:
        """About what the next chunk will take on disk (the JPEGs dominate)."""
        return sum(len(b[0]) for b in self._buf) + 4000 * len(self._buf)

    def discard_pending(self) -> int:
        """Drop the frames not yet written (the disk guard's last resort); returns how many."""
        n = len(self._buf)
        self.frames -= n
        self._buf.clear()
        return n

    def flush(self) -> int:
        """Write the buffered frames as the next chunk file (crash-safe); returns its size."""
        if not self._buf:
            return 0
        jpegs = [b[0] for b in self._buf]
        offsets = np.cumsum([0] + [len(j) for j in jpegs]).astype(np.int64)
        seq_bodies = [b[3] for b in self._buf]
        flat = [body for bodies in seq_bodies for body in bodies]
        arrays = {
            "jpeg": np.frombuffer(b"".join(jpegs), dtype=np.uint8),
            "jpeg_offsets": offsets,
            "device_usec": np.array([b[1] for b in self._buf], dtype=np.int64),
            "host_nsec": np.array([b[2] for b in self._buf], dtype=np.int64),
            "body_counts": np.array([len(b) for b in seq_bodies], dtype=np.int64),
            "body_ids": np.array([b.id for b in flat], dtype=np.uint64),
            "joints": np.stack([b.ntu_joint_rows() for b in flat])
            if flat
            else np.zeros((0, NUM_JOINTS, 12)),
            "body_info": np.stack([b.info for b in flat]) if flat else np.zeros((0, 9)),
        }
        self.chunks += 1
        final = self.dir / f"{CHUNK_PREFIX}{self.chunks:06d}.npz"
        tmp = final.with_suffix(".tmp")
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        tmp.write_bytes(buf.getbuffer())
        _fsync_replace(tmp, final)
        size = final.stat().st_size
        self.bytes_written += size
        self._buf.clear()
        return size


@dataclass
class ChunkData:
    """The readable chunks of a partial clip, concatenated in chunk order.

    ``skipped`` names every file of the folder that was not used and why (damaged chunks, a
    chunk repeating earlier frames, a torn ``.tmp``, stray files); ``contiguous`` is False when
    frames are missing between the kept ones (a chunk was skipped or absent), so the live flow,
    numbered by recorded frame, no longer lines up with the kept frames.
    """

    jpegs: list[bytes]
    device_usec: np.ndarray
    host_nsec: np.ndarray
    frames_bodies: list[list[Body]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    contiguous: bool = True


_CHUNK_RE = re.compile(rf"^{CHUNK_PREFIX}(\d{{6}})\.npz$")
_CHUNK_KEYS = ("jpeg", "jpeg_offsets", "device_usec", "host_nsec", "body_counts", "body_ids",
               "joints", "body_info")  # fmt: skip
#: A chunk file larger than this is not one the recorder wrote (half a second of 4K JPEGs is
#: about 30 MB); it is set aside instead of being loaded into memory.
MAX_CHUNK_BYTES = 1 << 30


def _read_chunk(path: Path) -> tuple[list[bytes], np.ndarray, np.ndarray, list[list[Body]]]:
    """One chunk file, checked for consistency; ValueError says what is wrong with it."""
    import zipfile

    from capture.frames import sequence_to_bodies
    from xmkd.ntu import SkeletonSequence

    if not path.is_file() or path.is_symlink():
        raise ValueError("not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError("empty file")
    if size > MAX_CHUNK_BYTES:
        raise ValueError(f"{size} bytes, larger than any chunk the recorder writes")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _CHUNK_KEYS if k not in z.files]
            if missing:
                raise ValueError(f"missing arrays {missing}")
            data = {k: z[k] for k in _CHUNK_KEYS}  # zipfile checks each array's CRC here
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    for key, value in data.items():
        if value.dtype.kind not in "uif":
            raise ValueError(f"array {key!r} has dtype {value.dtype}, expected numbers")
    raw, off = data["jpeg"], data["jpeg_offsets"]
    dev, host, counts = data["device_usec"], data["host_nsec"], data["body_counts"]
    n = len(dev)
    if raw.ndim != 1 or raw.dtype != np.uint8 or off.ndim != 1 or off.dtype.kind not in "iu":
        raise ValueError("the JPEG arrays do not have the recorder's types")
    if n == 0 or not (len(off) == n + 1 and len(host) == n and len(counts) == n):
        raise ValueError("its arrays disagree on the number of frames")
    if dev.ndim != 1 or host.ndim != 1 or counts.ndim != 1:
        raise ValueError("timestamps and body counts must be 1-D")
    if off[0] != 0 or off[-1] != len(raw) or np.any(np.diff(off) < 0):
        raise ValueError("the JPEG offsets do not cover the JPEG bytes")
    if np.any(np.diff(dev) <= 0):
        raise ValueError("its device timestamps do not increase")
    if counts.dtype.kind not in "iu" or np.any(counts < 0) or np.any(counts > 64):
        raise ValueError("implausible body counts")
    total = int(counts.sum())
    joints, info, ids = data["joints"], data["body_info"], data["body_ids"]
    if ids.shape != (total,) or joints.shape != (total, NUM_JOINTS, 12) or info.shape != (total, 9):
        raise ValueError("its body arrays disagree with the body counts")
    if not (np.all(np.isfinite(joints)) and np.all(np.isfinite(info))):
        raise ValueError("non-finite joint values")
    seq = SkeletonSequence.from_arrays(counts, ids, joints, body_info=info)
    raw_bytes = raw.tobytes()
    jpegs = [raw_bytes[off[i] : off[i + 1]] for i in range(n)]
    return jpegs, dev.astype(np.int64), host.astype(np.int64), sequence_to_bodies(seq)


def read_meta(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A partial clip's meta.json: (meta, None), or (None, why it cannot be used)."""
    path = directory / META_FILE
    try:
        if not path.is_file():
            return None, "missing"
        if path.stat().st_size > 1 << 20:
            return None, "larger than 1 MB"
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and bad UTF-8
        return None, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
    if not isinstance(meta, dict):
        return None, "not a JSON object"
    fps = meta.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 10000:
        return None, f"no usable 'fps' (got {str(fps)[:40]!r})"
    return meta, None


def read_partial(directory: Path) -> tuple[dict[str, Any] | None, ChunkData]:
    """meta.json (None when it is missing or unusable) and every readable chunk of a partial
    clip, in chunk order. Unreadable chunks are skipped, not where the clip ends: every
    readable chunk after a damaged one is kept (its frames follow a gap in the timestamps)."""
    meta, _ = read_meta(directory)
    numbered: list[tuple[int, Path]] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(directory.iterdir()):
        if path.name in (META_FILE, "flow"):
            continue
        match = _CHUNK_RE.match(path.name)
        if match is None:
            why = "a torn chunk (the recording stopped while writing it)"
            skipped.append((path.name, why if path.suffix == ".tmp" else "not a chunk file"))
        else:
            numbered.append((int(match.group(1)), path))
    jpegs: list[bytes] = []
    dev: list[np.ndarray] = []
    host: list[np.ndarray] = []
    bodies: list[list[Body]] = []
    kept: list[int] = []
    for number, path in sorted(numbered):
        try:
            c_jpegs, c_dev, c_host, c_bodies = _read_chunk(path)
        except ValueError as exc:
            skipped.append((path.name, f"unreadable ({str(exc)[:300]})"))
            continue
        if dev and c_dev[0] <= dev[-1][-1]:
            skipped.append((path.name, "repeats or precedes frames of an earlier chunk"))
            continue
        jpegs += c_jpegs
        dev.append(c_dev)
        host.append(c_host)
        bodies += c_bodies
        kept.append(number)
    empty = np.zeros(0, dtype=np.int64)
    return meta, ChunkData(
        jpegs,
        np.concatenate(dev) if dev else empty,
        np.concatenate(host) if host else empty,
        bodies,
        skipped,
        contiguous=kept == list(range(1, len(kept) + 1)),
    )


def write_mjpeg_avi(path: Path, jpegs: Sequence[bytes], fps: float) -> int:
    """Mux already-encoded JPEG frames into an MJPEG AVI (no re-encoding; OpenCV and PyAV read
    it like any MJPEG AVI). The file is complete and fsynced before it takes its name."""
    from fractions import Fraction

    import av
    import cv2

    from xmkd.recordings import fsync_dir, fsync_file

    first = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
    if first is None:
        raise XmkdError(f"{path}: the first recorded frame is not a valid JPEG")
    header = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    height, width = header.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(tmp), "w", format="avi") as out:
            stream = out.add_stream("mjpeg", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
            stream.time_base = 1 / rate
            for i, data in enumerate(jpegs):
                packet = av.Packet(data)
                packet.stream = stream
                packet.pts = packet.dts = i
                packet.time_base = 1 / rate
                packet.is_keyframe = True
                out.mux(packet)
    except av.error.FFmpegError as exc:  # e.g. a frame rate the AVI muxer refuses (10000 fps)
        tmp.unlink(missing_ok=True)
        raise XmkdError(f"{path}: FFmpeg could not write the AVI at {fps:g} fps ({exc})") from exc
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return len(jpegs)


_session_lock = threading.Lock()


def add_clip_to_session(session_dir: Path, entry: dict[str, Any]) -> None:
    """Append (or replace) a clip entry in session.json and update the dropped-frame totals."""
    from xmkd.recordings import read_session_json, write_session_json

    with _session_lock:
        info = read_session_json(session_dir)
        info["clips"] = [c for c in info["clips"] if c["name"] != entry["name"]] + [entry]
        info["clips"].sort(key=lambda c: c["name"])
        _update_dropped(info)
        write_session_json(session_dir, info)


def _update_dropped(info: dict[str, Any]) -> None:
    dropped = info.setdefault("dropped_frames", {})
    if not isinstance(dropped, dict):  # a hand-edited session.json: recompute from the clips
        dropped = info["dropped_frames"] = {}
    per_cam: dict[str, int] = {}
    for clip in info["clips"]:
        try:
            key = f"camera{int(clip.get('camera', 1))}"
            lost = int(clip.get("dropped_frames", 0))
        except (TypeError, ValueError):
            continue
        per_cam[key] = per_cam.get(key, 0) + lost
    dropped["clips_total"] = per_cam
    dropped["total"] = sum(per_cam.values())


def _infer_meta(name: str, data: ChunkData, defaults: dict[str, Any]) -> dict[str, Any]:
    """A partial clip's metadata rebuilt without its meta.json: the camera from the clip's
    name, the frame rate from its device timestamps (or the session's), flow as the session."""
    from xmkd.ntu import SampleName

    fps: float | None = None
    if len(data.device_usec) >= 2:
        period = float(np.median(np.diff(data.device_usec)))
        fps = 1e6 / period if period > 0 else None
    session_fps = defaults.get("fps")
    if session_fps and (fps is None or abs(fps / session_fps - 1) < 0.02):
        fps = session_fps  # the nominal rate (timestamps in whole microseconds round it)
    if not fps:
        raise XmkdError(
            f"{name}: its {META_FILE} is unusable and its frame rate cannot be inferred "
            "(a single frame and no fps in session.json)"
        )
    return {"name": name, "fps": float(fps), "camera": SampleName.parse(name).camera,
            "flow": bool(defaults.get("flow", False))}  # fmt: skip


def set_aside(directory: Path, names: Sequence[str], session_dir: Path) -> Path:
    """Move files of a partial clip that could not be used to ``<session>/damaged/<clip>/``
    (never deleted); returns that folder."""
    from xmkd.recordings import damaged_dir, fsync_dir

    target = damaged_dir(session_dir) / directory.name
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        dest = target / name
        k = 1
        while dest.exists() or dest.is_symlink():  # an earlier recovery set aside the same name
            dest = target / f"{name}.{k}"
            k += 1
        os.replace(directory / name, dest)
    fsync_dir(target)
    fsync_dir(target.parent)
    return target


def finalize_partial(
    directory: Path,
    session_dir: Path,
    flow_config: FlowConfig | None = None,
    log: Callable[[str], None] = print,
    recovered: bool = False,
    defaults: dict[str, Any] | None = None,
    set_aside_out: list[str] | None = None,
) -> dict[str, Any] | None:
    """Turn a partial clip into the layout's files and list it in session.json.

    Every file is written to a temporary name, fsynced and renamed, and its folder fsynced,
    before the clip is listed in session.json (itself atomic and fsynced); only then is the
    partial folder removed. Files that could not be read are moved to ``<session>/damaged/``,
    never deleted. ``recovered`` marks the entry (``xmkd recover``); ``defaults`` (the session's
    ``fps`` and ``flow``) stand in for an unusable meta.json; ``set_aside_out`` receives one
    sentence per file set aside. Returns the clip entry (None: nothing readable was recorded).
    """
    from xmkd.ntu import SampleName, format_skeleton
    from xmkd.recordings import (
        atomic_write_bytes,
        count_flow,
        flow_dir,
        fsync_dir,
        fsync_tree,
        skeleton_path,
        timestamps_path,
        video_path,
        write_timestamps,
    )

    name = directory.name
    SampleName.parse(name)  # the folder names the clip; anything else is not a partial clip
    meta, data = read_partial(directory)
    warnings: list[str] = []
    if meta is None:
        _, why = read_meta(directory)
        if (directory / META_FILE).exists():
            data.skipped.append((META_FILE, why or "unusable"))
        meta = _infer_meta(name, data, defaults or {}) if data.jpegs else {"name": name}
        warnings.append(f"{META_FILE} {why}; camera, frame rate and flow setting inferred")
    elif meta.get("name") not in (None, name):
        warnings.append(f"{META_FILE} names {str(meta.get('name'))[:40]!r}; the folder's name kept")
    if data.skipped:
        moved = set_aside(directory, [f for f, _ in data.skipped], session_dir)
        where = moved.relative_to(session_dir).as_posix()
        for file, why in data.skipped:
            warnings.append(f"{file} {why}; moved to {where}/")
            log(f"{name}: {file} {why}; moved to {where}/ (not deleted)")
            if set_aside_out is not None:
                set_aside_out.append(f"{name}/{file}: {why}; moved to {where}/")
    n = len(data.jpegs)
    if n == 0:
        shutil.rmtree(directory, ignore_errors=True)
        log(f"{name}: no readable chunk was recorded; nothing to keep")
        return None
    fps = float(meta["fps"])
    has_video = any(data.jpegs)
    jpegs = data.jpegs
    if has_video:
        # frames that arrived before the first colour image repeat it (frame i = instant i)
        first = next(j for j in data.jpegs if j)
        jpegs = [j or first for j in data.jpegs]
        write_mjpeg_avi(video_path(session_dir, name), jpegs, fps)
    skel = skeleton_path(session_dir, name)
    text = format_skeleton(bodies_to_sequence(data.frames_bodies))
    atomic_write_bytes(skel, text.encode("ascii"))  # fsynced, then renamed, folder fsynced
    write_timestamps(timestamps_path(session_dir, name), data.device_usec, data.host_nsec)
    flow_pairs = 0
    if meta.get("flow") and has_video:
        live = directory / "flow"
        target = flow_dir(session_dir, name)
        if target.exists():
            shutil.rmtree(target)
        have = _contiguous_pairs(live) if data.contiguous else 0
        if n == 1:  # a single frame has no flow pair
            target.mkdir(parents=True, exist_ok=True)
        elif have >= n - 1:
            for i in range(n, have + 1):  # pairs beyond the last kept frame
                for axis in ("x", "y"):
                    (live / f"flow_{axis}_{i:05d}.jpg").unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(live), str(target))
        else:  # the live worker fell behind or was killed, or frames are missing: recompute
            write_clip_flow(_decode_all(jpegs), target, flow_config or FlowConfig())
        fsync_tree(target)  # the flow JPEGs (written by OpenCV, not fsynced)
        fsync_dir(target.parent)
        flow_pairs = count_flow(target)
    dropped = count_dropped(data.device_usec.tolist(), fps)
    entry = {
        "name": name,
        "frames": n,
        "fps": fps,
        "camera": int(meta.get("camera", SampleName.parse(name).camera)),
        "dropped_frames": int(dropped),
        "start_device_usec": int(data.device_usec[0]),
        "flow_pairs": flow_pairs,
    }
    if recovered or meta.get("recovered"):
        entry["recovered"] = True
    warnings = [*(meta.get("warnings") or []), *warnings]
    if warnings:
        entry["warnings"] = warnings
    add_clip_to_session(session_dir, entry)  # listed only once its files are durable
    shutil.rmtree(directory, ignore_errors=True)
    return entry


def _contiguous_pairs(directory: Path) -> int:
    n = 0
    while (directory / f"flow_x_{n + 1:05d}.jpg").is_file() and (
        directory / f"flow_y_{n + 1:05d}.jpg"
    ).is_file():
        n += 1
    return n


def _decode_all(jpegs: Sequence[bytes]):
    import cv2

    for data in jpegs:
        yield cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


# ------------------------------------------------------------------------------------------
# Segmentation
class Segmenter:
    """Decides, frame by frame, which clips start and end (per device)."""

    def __init__(self, config: RecordConfig, fps: float):
        self.config = config
        self.fps = fps
        self.clip_len = max(1, int(round(config.clip_seconds * fps)))
        stride = config.stride_seconds if config.stride_seconds else config.clip_seconds
        self.stride = max(1, int(round(stride * fps)))
        self.gap = max(1, int(round(config.presence_gap_seconds * fps)))
        self.min_len = max(1, int(round(config.presence_min_seconds * fps)))
        self.take_active = False
        self._absent = 0

    def starts_clip(self, frame_number: int, has_body: bool, open_clips: int) -> bool:
        """Whether a new clip starts at this frame (0-based stream frame number)."""
        mode = self.config.mode
        if mode == "continuous":
            return frame_number % self.stride == 0
        if mode == "takes":
            return self.take_active and open_clips == 0
        if has_body and open_clips == 0:  # presence
            self._absent = 0
            return True
        return False

    def ends_clip(self, clip_frames: int, has_body: bool) -> bool:
        """Whether an open clip of ``clip_frames`` frames is complete (after this frame)."""
        mode = self.config.mode
        if mode == "continuous":
            return clip_frames >= self.clip_len
        if mode == "takes":
            return not self.take_active
        self._absent = 0 if has_body else self._absent + 1
        return self._absent >= self.gap or clip_frames >= self.clip_len


# ------------------------------------------------------------------------------------------
# The recorder
def is_live(source: Source) -> bool:
    """Whether ``source`` delivers frames in real time (a device, or a file or generator paced
    to its rate): only ``realtime`` set to False says it is not (a wrapping source, such as the
    GUI's preview tap, tells its inner source's)."""
    return getattr(source, "realtime", True) is not False


class _Device:
    def __init__(self, source: Source, config: RecordConfig):
        self.source = source
        self.queue: queue.Queue = queue.Queue(maxsize=config.queue_frames)
        self.overflow = 0
        self.frames_in = 0
        self.frames_written = 0
        self.capture_thread: threading.Thread | None = None
        self.writer_thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.replication = config.replication


class Recorder:
    """Records sources into ``session_dir``. ``start()``, then ``wait()`` or ``stop()``; in
    takes mode ``start_take()`` / ``stop_take()`` cut clips by hand."""

    def __init__(
        self,
        sources: Sequence[Source],
        session_dir: str | Path,
        config: RecordConfig | None = None,
        free_bytes: Callable[[Path], int] | None = None,
        log: Callable[[str], None] = print,
    ):
        if not sources:
            raise XmkdError("nothing to record: no source")
        cameras = [s.camera for s in sources]
        if len(set(cameras)) != len(cameras):
            raise XmkdError(f"every device needs its own NTU camera id, got {cameras}")
        self.config = config or RecordConfig()
        self.session_dir = Path(session_dir)
        self.devices = [_Device(s, self.config) for s in sources]
        self.log = log
        self._free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._stop = threading.Event()
        self.stop_reason: str | None = None
        self.flow_worker: FlowWorker | None = None
        self._finalize_q: queue.Queue = queue.Queue()
        self._finalizer: threading.Thread | None = None
        self.clips: list[dict[str, Any]] = []
        self.started_at: float | None = None
        self._stopped = False
        self._reserve_lock = threading.Lock()
        self._reserved = 0  # bytes of chunks written and not finalized yet
        self.outcome = "done"  # one of OUTCOMES: how the recording ended

    # ---- session --------------------------------------------------------------------------
    def _init_session(self) -> None:
        from xmkd.recordings import (
            make_session_dirs,
            new_session_info,
            read_session_json,
            write_session_json,
        )

        make_session_dirs(self.session_dir)
        devices = [d.source.device_info() for d in self.devices]
        settings = asdict(self.config)
        settings["fps"] = self.devices[0].source.fps
        if (self.session_dir / "session.json").is_file():  # continue an existing session
            info = read_session_json(self.session_dir)
            known = {d.get("camera") for d in info["devices"]}
            info["devices"] += [d for d in devices if d.get("camera") not in known]
        else:
            # a wrapping source (e.g. the GUI's preview tap) exposes the wrapped one as .inner
            kinds = sorted({getattr(d.source, "inner", d.source).kind for d in self.devices})
            info = new_session_info(" + ".join(kinds), devices, settings)
        self._existing = {c["name"] for c in info["clips"]}
        write_session_json(self.session_dir, info)
        lock = self.session_dir / "partial" / LOCK_FILE
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(str(os.getpid()))

    def _next_name(self, dev: _Device) -> str:
        while True:
            if dev.replication > 999:
                raise XmkdError("replication numbers are exhausted (R999); start a new session")
            name = clip_name(
                self.config.setup, dev.source.camera, self.config.performer, dev.replication
            )
            dev.replication += 1
            if name not in self._existing and not (self.session_dir / "partial" / name).exists():
                return name

    # ---- control --------------------------------------------------------------------------
    def start(self) -> Recorder:
        """Open every source, create the session and start recording. If anything fails on the
        way, whatever was already opened or started is closed again before the error is raised
        (a device is not left held by a recorder that never ran)."""
        opened: list[Source] = []
        try:
            for dev in self.devices:
                dev.source.open()
                opened.append(dev.source)
            self._init_session()
            if self.config.flow:
                self.flow_worker = FlowWorker(self.config.flow_config)
        except BaseException:
            self._undo_start(opened)
            raise
        self._finalizer = threading.Thread(target=self._finalize_loop, name="finalize")
        self._finalizer.start()
        self.started_at = time.monotonic()
        for dev in self.devices:
            dev.segmenter = Segmenter(self.config, dev.source.fps)  # type: ignore[attr-defined]
            dev.writer_thread = threading.Thread(target=self._write_loop, args=(dev,), daemon=True)
            dev.capture_thread = threading.Thread(
                target=self._capture_loop, args=(dev,), daemon=True
            )
            dev.writer_thread.start()
            dev.capture_thread.start()
        return self

    def _undo_start(self, opened: Sequence[Source]) -> None:
        if self.flow_worker is not None:
            self.flow_worker.close(timeout=5.0)
            self.flow_worker = None
        for source in reversed(opened):
            try:
                source.close()
            except Exception as exc:  # noqa: BLE001 - the original error is the one to report
                self.log(f"closing {source.description} after the failed start: {exc}")
        lock = self.session_dir / "partial" / LOCK_FILE
        try:
            if lock.read_text().strip() == str(os.getpid()):
                lock.unlink()
        except OSError:
            pass
        self._stopped = True

    def start_take(self) -> None:
        for dev in self.devices:
            dev.queue.put(("take", True))

    def stop_take(self) -> None:
        for dev in self.devices:
            dev.queue.put(("take", False))

    def request_stop(self, reason: str | None = None, outcome: str | None = None) -> None:
        """Ask every source to stop (thread-safe, from a signal handler too). The first
        ``reason`` given is the one reported; ``outcome`` (see `OUTCOMES`) goes with it."""
        if reason and not self.stop_reason:
            self.stop_reason = reason
            if outcome:
                self.outcome = outcome
        self._stop.set()
        for dev in self.devices:
            dev.source.stop()

    def wait(self) -> dict[str, Any]:
        """Until every source ends (or max_seconds / stop / disk guard); then finish."""
        try:
            while not self._stop.is_set() and any(
                d.capture_thread and d.capture_thread.is_alive() for d in self.devices
            ):
                if self.config.max_seconds is not None and self.started_at is not None:
                    if time.monotonic() - self.started_at >= self.config.max_seconds:
                        self.request_stop()
                time.sleep(0.05)
        except KeyboardInterrupt:
            self.request_stop("interrupted (Ctrl+C); clips so far are kept", "interrupted")
        return self.stop()

    def stop(self) -> dict[str, Any]:
        """Stop the sources, finish every clip and write the session totals (idempotent).

        A source that does not return from its frame iterator within `STOP_GRACE_SECONDS`
        (e.g. one that drops every frame it cannot deliver in time) is abandoned: its writer is
        told the stream ended, so the recording still finishes."""
        if self._stopped:
            return self.stats()
        self._stopped = True
        self.request_stop()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for dev in self.devices:
            if dev.capture_thread:
                dev.capture_thread.join(max(0.0, deadline - time.monotonic()))
                if dev.capture_thread.is_alive():
                    self.log(
                        f"camera {dev.source.camera}: the source did not stop within "
                        f"{STOP_GRACE_SECONDS:g} s; recording ended without it"
                    )
                    self._end_stream(dev)
        for dev in self.devices:
            if dev.writer_thread:
                dev.writer_thread.join()
            try:
                dev.source.close()
            except Exception as exc:  # noqa: BLE001 - the clips matter more than the device
                self.log(f"closing camera {dev.source.camera} failed: {exc}")
        self._finalize_q.put(None)
        if self._finalizer:
            self._finalizer.join()
        if self.flow_worker:
            self.flow_worker.close()
        try:
            self._write_totals()
        except (OSError, XmkdError) as exc:  # e.g. ENOSPC: the clips are listed already
            self.log(f"could not update the totals in session.json ({exc})")
        (self.session_dir / "partial" / LOCK_FILE).unlink(missing_ok=True)
        for dev in self.devices:
            err = dev.error
            if err is None:
                continue
            if isinstance(err, OSError):  # a disk or device failure, said in one sentence
                raise XmkdError(
                    f"recording camera {dev.source.camera} failed ({err}); clips so far are "
                    "kept, `xmkd recover` finishes the partial ones"
                ) from err
            raise err
        return self.stats()

    @staticmethod
    def _end_stream(dev: _Device) -> None:
        """Tell a writer its stream ended (its capture thread could not)."""
        while dev.writer_thread is not None and dev.writer_thread.is_alive():
            try:
                dev.queue.put(None, timeout=0.5)
                return
            except queue.Full:
                continue

    def stats(self) -> dict[str, Any]:
        return {
            "clips": len(self.clips),
            "frames": {d.source.camera: d.frames_written for d in self.devices},
            "dropped_frames": {d.source.camera: d.source.dropped_frames for d in self.devices},
            "queue_overflow": {d.source.camera: d.overflow for d in self.devices},
            "stop_reason": self.stop_reason,
            "outcome": self.outcome,
        }

    def _write_totals(self) -> None:
        from xmkd.recordings import read_session_json, write_session_json

        with _session_lock:
            info = read_session_json(self.session_dir)
            dropped = info.setdefault("dropped_frames", {})
            for dev in self.devices:
                key = f"camera{dev.source.camera}"
                dropped.setdefault("device", {})[key] = (
                    dropped.get("device", {}).get(key, 0) + dev.source.dropped_frames
                )
                dropped.setdefault("recorder_queue_overflow", {})[key] = (
                    dropped.get("recorder_queue_overflow", {}).get(key, 0) + dev.overflow
                )
            if self.stop_reason:
                info.setdefault("settings", {})["stopped"] = self.stop_reason
            info["settings"]["ended"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            write_session_json(self.session_dir, info)

    # ---- threads --------------------------------------------------------------------------
    def _capture_loop(self, dev: _Device) -> None:
        # max_seconds also counts stream time: a source faster than real time (a file played
        # as fast as it decodes, a very high frame rate) stops after that much of its stream
        limit = None if self.config.max_seconds is None else self.config.max_seconds * 1e6
        first: int | None = None
        live = is_live(dev.source)
        try:
            for frame in dev.source:
                if limit is not None:
                    first = frame.device_usec if first is None else first
                    if frame.device_usec - first >= limit:
                        self.request_stop()
                        break
                dev.frames_in += 1
                if live:
                    try:
                        dev.queue.put_nowait(frame)
                    except queue.Full:
                        dev.overflow += 1  # counted, never blocking the device
                else:
                    self._put_waiting(dev, frame)
                if self._stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            dev.error = exc
            self.request_stop(f"camera {dev.source.camera} failed: {exc}", "failed")
        finally:
            dev.queue.put(None)

    def _put_waiting(self, dev: _Device, frame: Frame) -> None:
        """Queue a file's frame, waiting while the writer catches up (until a stop)."""
        while not self._stop.is_set():
            try:
                dev.queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue
        # stopped while waiting: the recording ends before this frame (as it would for a live
        # source's next frame), so it is not counted as lost

    def _write_loop(self, dev: _Device) -> None:
        import cv2

        seg: Segmenter = dev.segmenter  # type: ignore[attr-defined]
        params = [cv2.IMWRITE_JPEG_QUALITY, int(self.config.jpeg_quality)]
        open_clips: list[PartialClip] = []
        flush_every = max(1, int(round(self.config.chunk_seconds * dev.source.fps)))
        stream_frame = 0
        halted = False
        try:
            while True:
                item = dev.queue.get()
                if item is None:
                    break
                if isinstance(item, tuple):  # ("take", on)
                    seg.take_active = bool(item[1])
                    if not seg.take_active:
                        for clip in open_clips:
                            halted = not self._close_clip(clip, seg) or halted
                        open_clips = []
                    continue
                if halted:
                    continue
                frame: Frame = item
                has_body = bool(frame.bodies)
                if seg.starts_clip(stream_frame, has_body, len(open_clips)):
                    name = self._next_name(dev)
                    open_clips.append(
                        PartialClip(
                            self.session_dir,
                            name,
                            dev.source.fps,
                            dev.source.camera,
                            {
                                "flow": self.config.flow,
                                "source": dev.source.description,
                                "started": datetime.now(timezone.utc).isoformat(),
                            },
                        )  # fmt: skip
                    )
                stream_frame += 1
                if not open_clips:
                    continue
                jpeg = None
                if frame.color is not None:
                    ok, enc = cv2.imencode(".jpg", frame.color, params)
                    jpeg = enc.tobytes() if ok else None
                still_open = []
                for clip in open_clips:
                    number = clip.add(jpeg, frame)
                    if self.flow_worker is not None and frame.color is not None:
                        self.flow_worker.submit(clip.flow_dir, number, frame.color)
                    if clip.pending >= flush_every and not self._guarded_flush(clip):
                        halted = True
                    if halted or seg.ends_clip(clip.frames, has_body):
                        if not self._close_clip(clip, seg):
                            halted = True
                    else:
                        still_open.append(clip)
                open_clips = still_open
                dev.frames_written += 1
                if halted:
                    self.request_stop(self.stop_reason)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if not full:
                dev.error = exc
            self.request_stop(
                f"stopped recording: writing camera {dev.source.camera} failed ({exc}); clips so "
                "far are kept, `xmkd recover` finishes the partial ones",
                "disk" if full else "failed",
            )
        except BaseException as exc:  # noqa: BLE001
            dev.error = exc
            self.request_stop(f"writing camera {dev.source.camera} failed: {exc}", "failed")
        finally:
            for clip in open_clips:
                try:
                    self._close_clip(clip, seg)
                except OSError as exc:
                    self.log(f"{clip.name}: left in partial/ ({exc}); run xmkd recover later")
                except BaseException as exc:  # noqa: BLE001
                    dev.error = dev.error or exc

    def _disk_ok(self, incoming: int = 0) -> bool:
        """Whether ``incoming`` more bytes fit while keeping ``min_free_mb`` free and room to
        finalize every clip not finalized yet (its video is a copy of its chunks)."""
        free = self._free_bytes(self.session_dir)
        with self._reserve_lock:
            needed = self.config.min_free_mb * 1e6 + self._reserved + 2 * incoming
        if free < needed:
            # said once, by whoever reports the stop (the CLI's summary, the GUI's status)
            self.request_stop(
                f"stopped recording: only {free / 1e6:.0f} MB free on the disk of "
                f"{self.session_dir} (the guard keeps {self.config.min_free_mb:.0f} MB plus "
                "room to finish the open clips; free space or lower --min-free-mb); "
                "clips so far are kept",
                "disk",
            )
            return False
        return True

    def _guarded_flush(self, clip: PartialClip) -> bool:
        """Flush a clip's buffered frames if the disk guard allows; else drop them (False)."""
        if not clip.pending:
            return True
        if not self._disk_ok(clip.pending_bytes):
            dropped = clip.discard_pending()
            self.log(f"{clip.name}: the last {dropped} frame(s) were not written (disk guard)")
            return False
        size = clip.flush()
        with self._reserve_lock:
            self._reserved += size
        return True

    def _close_clip(self, clip: PartialClip, seg: Segmenter) -> bool:
        """Flush and queue a clip for finalizing; False if the disk guard tripped."""
        ok = self._guarded_flush(clip)
        if self.flow_worker is not None:
            self.flow_worker.end_clip(clip.flow_dir)
        if (self.config.mode == "presence" and clip.frames < seg.min_len) or clip.frames == 0:
            shutil.rmtree(clip.dir, ignore_errors=True)  # a passer-by, not an action
            with self._reserve_lock:
                self._reserved -= clip.bytes_written
            return ok
        self._finalize_q.put(clip)
        return ok

    def _finalize_loop(self) -> None:
        while True:
            clip = self._finalize_q.get()
            if clip is None:
                break
            if self.flow_worker is not None:
                self.flow_worker.wait_clip(clip.flow_dir, timeout=120.0)
            try:
                entry = finalize_partial(
                    clip.dir, self.session_dir, self.config.flow_config, self.log
                )
            except (OSError, XmkdError) as exc:  # e.g. the disk filled up
                # the partial clip stays on disk; `xmkd recover` finishes it later
                self.log(f"{clip.name}: left in partial/ ({exc}); run xmkd recover later")
                if isinstance(exc, OSError):  # the disk: the next clips would fail too
                    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    self.request_stop(
                        f"stopped recording: finishing {clip.name} failed ({exc}); clips so far "
                        "are kept, `xmkd recover` finishes the partial ones",
                        "disk" if full else "failed",
                    )
                continue
            finally:
                with self._reserve_lock:
                    self._reserved -= clip.bytes_written
            if entry is not None:
                self.clips.append(entry)
                self.log(f"{entry['name']}: {entry['frames']} frames")
