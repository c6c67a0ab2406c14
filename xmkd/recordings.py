"""The recordings layout: the one API for reading and writing sessions of paired data.

A session is a folder (layout documented in ``recordings/README.md``)::

    <session>/session.json
    <session>/skeletons/<name>.skeleton      NTU text format (xmkd.ntu.write_skeleton)
    <session>/rgb/<name>_rgb.avi             MJPEG in AVI, frames mirrored like NTU's
    <session>/flow/<name>/flow_x_00001.jpg   mmaction2 rawframes convention, bound 20
    <session>/timestamps/<name>.csv          frame,device_usec,host_nsec
    <session>/partial/                       crash-safe chunks of clips being recorded
    <session>/damaged/                       what ``xmkd recover`` could not read (kept)

Everything that writes a session (``xmkd synth``, the capture recorder) uses the path helpers,
:func:`write_session_json`, :class:`VideoWriter`/:func:`write_video`, :func:`write_flow` and
:func:`write_timestamps`; everything that reads one uses :meth:`Session.open`. Writes of
``session.json`` are atomic (temporary file + ``os.replace``) so a crash never leaves a half
index behind.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import platform
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from xmkd.errors import FormatError, XmkdError

SESSION_FILE = "session.json"
SESSION_FORMAT = "xmkd-session"
SESSION_VERSION = 1

SKELETON_DIR = "skeletons"
VIDEO_DIR = "rgb"
FLOW_DIR = "flow"
TIMESTAMPS_DIR = "timestamps"
PARTIAL_DIR = "partial"
DAMAGED_DIR = "damaged"

#: Optical flow values are clipped to [-FLOW_BOUND, FLOW_BOUND] before quantisation (mmaction2).
FLOW_BOUND = 20.0
#: Frame pair i (1-based) of a clip's flow: flow from frame i to frame i + 1.
FLOW_X_PATTERN = "flow_x_{:05d}.jpg"
FLOW_Y_PATTERN = "flow_y_{:05d}.jpg"
TIMESTAMP_COLUMNS = ("frame", "device_usec", "host_nsec")
VIDEO_FOURCC = "MJPG"


# --------------------------------------------------------------------------------------------
# Paths
def skeleton_path(session_dir: str | Path, name: str) -> Path:
    """``<session>/skeletons/<name>.skeleton``."""
    return Path(session_dir) / SKELETON_DIR / f"{name}.skeleton"


def video_path(session_dir: str | Path, name: str) -> Path:
    """``<session>/rgb/<name>_rgb.avi`` (NTU's video naming)."""
    return Path(session_dir) / VIDEO_DIR / f"{name}_rgb.avi"


def flow_dir(session_dir: str | Path, name: str) -> Path:
    """``<session>/flow/<name>/`` holding ``flow_x_%05d.jpg`` / ``flow_y_%05d.jpg``."""
    return Path(session_dir) / FLOW_DIR / name


def flow_paths(directory: str | Path, index: int) -> tuple[Path, Path]:
    """The x and y JPEG of 1-based flow pair ``index`` in a clip's flow folder."""
    if index < 1:
        raise ValueError(f"flow pairs are numbered from 1, got {index}")
    directory = Path(directory)
    return directory / FLOW_X_PATTERN.format(index), directory / FLOW_Y_PATTERN.format(index)


def timestamps_path(session_dir: str | Path, name: str) -> Path:
    """``<session>/timestamps/<name>.csv``."""
    return Path(session_dir) / TIMESTAMPS_DIR / f"{name}.csv"


def partial_dir(session_dir: str | Path) -> Path:
    """``<session>/partial/``: the recorder's crash-safe chunks (owned by ``capture``)."""
    return Path(session_dir) / PARTIAL_DIR


def damaged_dir(session_dir: str | Path) -> Path:
    """``<session>/damaged/``: files ``xmkd recover`` could not read, moved aside (never
    deleted) so they can still be examined or repaired by hand."""
    return Path(session_dir) / DAMAGED_DIR


def make_session_dirs(session_dir: str | Path) -> Path:
    """Create a session folder and its sub-folders (existing ones are kept)."""
    root = Path(session_dir)
    for sub in (SKELETON_DIR, VIDEO_DIR, FLOW_DIR, TIMESTAMPS_DIR):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


# --------------------------------------------------------------------------------------------
# session.json
def atomic_write_text(path: str | Path, text: str, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder + ``os.replace``:
    readers see the old or the new content, never a partial file. ``fsync`` also makes the
    content and the rename durable (file, then folder: survives a power loss; costs
    milliseconds per file)."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """:func:`atomic_write_text` for bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def fsync_file(path: str | Path) -> None:
    """Flush a file's content to the disk (it survives a power loss once this returns)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make the entries of a folder durable: a rename or a new file in it survives a power loss
    only after its folder is fsynced (POSIX; a no-op where folders cannot be opened, Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # Windows: folders are not opened this way
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a folder (EINVAL): nothing to do
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(directory: str | Path) -> None:
    """fsync every file directly in ``directory`` and then the folder itself.

    The files are fsynced from several threads at once: the filesystem's journal then commits
    them together (a clip's flow is hundreds of small JPEGs; one by one, each fsync waits for
    its own commit: 20x slower on ext4, see ``bench/bench_recorder.py --durability``)."""
    from concurrent.futures import ThreadPoolExecutor

    directory = Path(directory)
    files = [e.path for e in os.scandir(directory) if e.is_file(follow_symlinks=False)]
    if len(files) > 1:
        with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
            list(pool.map(fsync_file, files))
    elif files:
        fsync_file(files[0])
    fsync_dir(directory)


def software_versions(**extra: str) -> dict[str, str]:
    """Versions of xmkd, Python, numpy and OpenCV (plus ``extra``) for ``session.json``."""
    import cv2

    from xmkd import __version__

    versions = {
        "xmkd": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    versions.update(extra)
    return versions


def new_session_info(
    source: str,
    devices: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A fresh ``session.json`` dictionary with no clips yet.

    ``source`` says what produced the data ("synthetic", "azure-kinect", ...); ``devices`` is one
    entry per camera (``{"camera": 1, "serial": ..., "calibration": {...}}``); ``classes`` names
    the actions (index = action number - 1) when they are known.
    """
    info: dict[str, Any] = {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "devices": list(devices or []),
        "settings": dict(settings or {}),
        "versions": dict(versions or software_versions()),
        "clips": [],
        "dropped_frames": {},
    }
    if classes is not None:
        info["classes"] = list(classes)
    return info


def write_session_json(session_dir: str | Path, info: dict[str, Any]) -> Path:
    """Validate and atomically write ``<session>/session.json``; returns its path."""
    path = Path(session_dir) / SESSION_FILE
    _validate_session_info(info, path)
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=False) + "\n")
    return path


def read_session_json(session_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``<session>/session.json``."""
    root = Path(session_dir)
    if not root.is_dir():
        raise XmkdError(f"{root} is not a folder (expected an xmkd session folder)")
    path = root / SESSION_FILE
    if not path.is_file():
        raise XmkdError(
            f"{root} is not an xmkd session: it has no {SESSION_FILE} "
            "(the layout is described in recordings/README.md)"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"is not valid JSON ({exc})") from exc
    _validate_session_info(info, path)
    return info


def _validate_session_info(info: Any, path: Path) -> None:
    if not isinstance(info, dict):
        raise FormatError(path, "expected a JSON object at the top level")
    if info.get("format") != SESSION_FORMAT:
        raise FormatError(path, f"'format' must be {SESSION_FORMAT!r}, got {info.get('format')!r}")
    version = info.get("version")
    if not isinstance(version, int) or not 1 <= version <= SESSION_VERSION:
        raise FormatError(
            path, f"unsupported 'version' {version!r} (this xmkd reads 1..{SESSION_VERSION})"
        )
    clips = info.get("clips")
    if not isinstance(clips, list):
        raise FormatError(path, "'clips' must be a list")
    for i, clip in enumerate(clips):
        if not isinstance(clip, dict) or not isinstance(clip.get("name"), str):
            raise FormatError(path, f"clips[{i}] must be an object with a 'name' string")
        frames = clip.get("frames")
        if not isinstance(frames, int) or frames < 0:
            raise FormatError(path, f"clips[{i}] ({clip['name']}): 'frames' must be an int >= 0")
    classes = info.get("classes")
    if classes is not None and not (
        isinstance(classes, list) and all(isinstance(c, str) for c in classes)
    ):
        raise FormatError(path, "'classes' must be a list of strings")


# --------------------------------------------------------------------------------------------
# Optical flow
def encode_flow(flow_xy: np.ndarray, bound: float = FLOW_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """Quantise a flow field (H, W, 2) float to two uint8 images: clip to [-bound, bound] and map
    to round(255 * (v + bound) / (2 * bound)), as denseflow/mmaction2 store flow."""
    flow_xy = np.asarray(flow_xy, dtype=np.float32)
    if flow_xy.ndim != 3 or flow_xy.shape[2] != 2:
        raise ValueError(f"expected a flow field of shape (H, W, 2), got {flow_xy.shape}")
    clipped = np.clip(flow_xy, -bound, bound)
    q = np.rint(255.0 * (clipped + bound) / (2.0 * bound)).astype(np.uint8)
    return np.ascontiguousarray(q[..., 0]), np.ascontiguousarray(q[..., 1])


def decode_flow(x_u8: np.ndarray, y_u8: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Inverse of :func:`encode_flow`: two uint8 images -> (H, W, 2) float32 flow (step 40/255)."""
    q = np.stack([np.asarray(x_u8), np.asarray(y_u8)], axis=-1).astype(np.float32)
    return q * (2.0 * bound / 255.0) - bound


def write_flow(directory: str | Path, flows: Iterable[np.ndarray], quality: int = 95) -> int:
    """Write flow fields (each (H, W, 2) float) as ``flow_x/y_%05d.jpg`` numbered from 1 into
    ``directory`` (created); returns the number of pairs written. Computing flow is
    :mod:`capture.flow`'s job (DIS/TV-L1 at the TSN resolution)."""
    import cv2

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    count = 0
    for count, flow in enumerate(flows, start=1):
        x_u8, y_u8 = encode_flow(flow)
        px, py = flow_paths(directory, count)
        if not (cv2.imwrite(str(px), x_u8, params) and cv2.imwrite(str(py), y_u8, params)):
            raise XmkdError(f"could not write flow images to {directory}")
    return count


def count_flow(directory: str | Path) -> int:
    """Number of flow pairs in a clip's flow folder (0 when it does not exist); checks that the
    x and y files are complete and numbered 1..N without gaps."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    names = set(os.listdir(directory))
    n = sum(1 for f in names if f.startswith("flow_x_") and f.endswith(".jpg"))
    for i in range(1, n + 1):
        if FLOW_X_PATTERN.format(i) not in names or FLOW_Y_PATTERN.format(i) not in names:
            raise FormatError(directory, f"flow pair {i} of {n} is missing (x or y JPEG)")
    return n


def read_flow(directory: str | Path, decode: bool = False) -> np.ndarray:
    """All flow pairs of a clip: (N, H, W, 2) uint8 as stored (x, y), or float32 pixels when
    ``decode`` is true."""
    import cv2

    n = count_flow(directory)
    if n == 0:
        raise XmkdError(f"{directory} holds no optical flow (flow_x_00001.jpg missing)")
    pairs = []
    for i in range(1, n + 1):
        px, py = flow_paths(directory, i)
        x = cv2.imread(str(px), cv2.IMREAD_GRAYSCALE)
        y = cv2.imread(str(py), cv2.IMREAD_GRAYSCALE)
        if x is None or y is None:
            raise FormatError(px if x is None else py, "is not a readable JPEG image")
        pairs.append(np.stack([x, y], axis=-1))
    stored = np.stack(pairs)
    return decode_flow(stored[..., 0], stored[..., 1]) if decode else stored


# --------------------------------------------------------------------------------------------
# Video
class VideoWriter:
    """Append BGR uint8 frames to an MJPEG AVI (OpenCV's built-in AVI/MJPEG muxer, so it works on
    the headless build without FFmpeg; its JPEG quality is fixed: OpenCV 5's MJPEG writer ignores
    VIDEOWRITER_PROP_QUALITY). Use as a context manager; :attr:`frames` counts writes."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int) -> None:
        import cv2

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(width), int(height))
        self.frames = 0
        self._writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), float(fps), self.size
        )
        if not self._writer.isOpened():
            raise XmkdError(f"OpenCV could not open {self.path} for writing an MJPEG AVI")

    def write(self, frame_bgr: np.ndarray) -> None:
        frame_bgr = np.asarray(frame_bgr)
        if frame_bgr.dtype != np.uint8 or frame_bgr.shape != (self.size[1], self.size[0], 3):
            raise ValueError(
                f"{self.path}: expected a uint8 BGR frame of shape "
                f"{(self.size[1], self.size[0], 3)}, got {frame_bgr.dtype} {frame_bgr.shape}"
            )
        self._writer.write(np.ascontiguousarray(frame_bgr))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_video(path: str | Path, frames_bgr: np.ndarray, fps: float) -> int:
    """Write (T, H, W, 3) uint8 BGR frames as an MJPEG AVI; returns the frame count."""
    frames_bgr = np.asarray(frames_bgr)
    if frames_bgr.ndim != 4 or frames_bgr.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames_bgr.shape}")
    with VideoWriter(path, fps, frames_bgr.shape[2], frames_bgr.shape[1]) as writer:
        for frame in frames_bgr:
            writer.write(frame)
    return writer.frames


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a video's header."""

    frames: int
    width: int
    height: int
    fps: float


def _open_capture(path: Path):
    import cv2

    if not path.is_file():
        raise XmkdError(f"video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise FormatError(path, "OpenCV cannot open this video")
    return cap


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, size and rate from the container header (no decoding)."""
    import cv2

    path = Path(path)
    cap = _open_capture(path)
    try:
        return VideoInfo(
            frames=int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=float(cap.get(cv2.CAP_PROP_FPS)),
        )
    finally:
        cap.release()


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame: (T, H, W, 3) uint8 in OpenCV's BGR order."""
    path = Path(path)
    cap = _open_capture(path)
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise FormatError(path, "the video holds no decodable frame")
    return np.stack(frames)


# --------------------------------------------------------------------------------------------
# Timestamps
def write_timestamps(
    path: str | Path,
    device_usec: Sequence[int] | np.ndarray,
    host_nsec: Sequence[int] | np.ndarray,
    fsync: bool = True,
) -> None:
    """Write ``frame,device_usec,host_nsec`` rows (frame numbered from 0, one row per frame),
    atomically (see :func:`atomic_write_text` for ``fsync``)."""
    device_usec = np.asarray(device_usec, dtype=np.int64)
    host_nsec = np.asarray(host_nsec, dtype=np.int64)
    if device_usec.shape != host_nsec.shape or device_usec.ndim != 1:
        raise ValueError("device_usec and host_nsec must be 1-D and of equal length")
    lines = [",".join(TIMESTAMP_COLUMNS)]
    rows = zip(device_usec.tolist(), host_nsec.tolist())
    lines += [f"{i},{d},{h}" for i, (d, h) in enumerate(rows)]
    atomic_write_text(path, "\n".join(lines) + "\n", fsync=fsync)


def read_timestamps(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a timestamps CSV: (device_usec, host_nsec) int64 arrays, one entry per frame."""
    path = Path(path)
    if not path.is_file():
        raise XmkdError(f"timestamps file {path} does not exist")
    device, host = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != TIMESTAMP_COLUMNS:
            raise FormatError(path, f"expected the header {','.join(TIMESTAMP_COLUMNS)}", line=1)
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 3:
                raise FormatError(path, f"expected 3 comma-separated integers, got {row}", line_no)
            try:
                frame, d, h = (int(v) for v in row)
            except ValueError:
                raise FormatError(path, f"expected integers, got {row}", line_no) from None
            if frame != len(device):
                raise FormatError(path, f"expected frame {len(device)}, got {frame}", line_no)
            device.append(d)
            host.append(h)
    return np.array(device, dtype=np.int64), np.array(host, dtype=np.int64)


def count_timestamps(path: str | Path) -> int:
    """Number of frame rows in a timestamps CSV (header excluded) without parsing them."""
    with open(path, encoding="utf-8") as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)


def skeleton_frame_count(path: str | Path) -> int:
    """The frame count on the first line of an NTU ``.skeleton`` file (cheap header check; the
    full reader is :func:`xmkd.ntu.read_skeleton`)."""
    path = Path(path)
    with open(path, "rb") as fh:
        first = fh.readline().strip()
    try:
        return int(first)
    except ValueError:
        raise FormatError(path, f"expected the frame count, got {first[:40]!r}", line=1) from None


# --------------------------------------------------------------------------------------------
# Sessions
@dataclass(frozen=True)
class Clip:
    """One clip of a session: its NTU name, frame count and the paths of its files."""

    session_dir: Path
    name: str
    frames: int
    fps: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def sample(self):
        """The parsed NTU name (:class:`xmkd.ntu.SampleName`)."""
        from xmkd.ntu import SampleName

        return SampleName.parse(self.name)

    @property
    def label(self) -> int:
        """0-based class (action - 1), or -1 for an unlabeled clip (A000)."""
        action = self.sample.action
        return action - 1 if action > 0 else -1

    @property
    def skeleton(self) -> Path:
        return skeleton_path(self.session_dir, self.name)

    @property
    def video(self) -> Path:
        return video_path(self.session_dir, self.name)

    @property
    def flow(self) -> Path:
        return flow_dir(self.session_dir, self.name)

    @property
    def timestamps(self) -> Path:
        return timestamps_path(self.session_dir, self.name)

    @property
    def has_video(self) -> bool:
        return self.video.is_file()

    @property
    def has_flow(self) -> bool:
        return flow_paths(self.flow, 1)[0].is_file()


class Session:
    """A session folder opened for reading: ``Session.open(path).clips``."""

    def __init__(self, path: Path, info: dict[str, Any], clips: list[Clip]) -> None:
        self.path = path
        self.info = info
        self.clips = clips
        self._by_name = {c.name: c for c in clips}

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Session:
        """Open a session: read ``session.json`` and check every clip it lists.

        With ``verify`` (the default) each clip must have its ``.skeleton`` file whose frame count
        equals the index's, and its video (when present), timestamps (when present) and flow
        (when present: frames - 1 pairs) must agree with it; the first disagreement raises a
        :class:`FormatError` naming the file. Only headers are read, so this is quick.
        """
        from xmkd.ntu import SampleName

        root = Path(path)
        info = read_session_json(root)
        json_path = root / SESSION_FILE
        clips: list[Clip] = []
        seen: set[str] = set()
        for entry in info["clips"]:
            name = entry["name"]
            if name in seen:
                raise FormatError(json_path, f"clip {name} is listed twice")
            seen.add(name)
            try:
                SampleName.parse(name)
            except (ValueError, XmkdError) as exc:
                msg = f"clip name {name!r} is not an NTU name: {exc}"
                raise FormatError(json_path, msg) from exc
            clip = Clip(root, name, int(entry["frames"]), entry.get("fps"), dict(entry))
            if verify:
                _verify_clip(clip)
            clips.append(clip)
        return cls(root, info, clips)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self):
        return iter(self.clips)

    def clip(self, name: str) -> Clip:
        try:
            return self._by_name[name]
        except KeyError:
            raise XmkdError(f"session {self.path} has no clip {name}") from None

    @property
    def class_names(self) -> list[str] | None:
        """Action names (index = action - 1) when the session knows them."""
        classes = self.info.get("classes")
        return list(classes) if classes is not None else None

    @property
    def fps(self) -> float | None:
        return self.info.get("settings", {}).get("fps")


def _verify_clip(clip: Clip) -> None:
    skel = clip.skeleton
    if not skel.is_file():
        raise FormatError(skel, f"is missing (clip {clip.name} is listed in session.json)")
    n = skeleton_frame_count(skel)
    if n != clip.frames:
        raise FormatError(skel, f"has {n} frames but session.json lists {clip.frames}")
    if clip.has_video:
        frames = probe_video(clip.video).frames
        if frames != n:
            raise FormatError(
                clip.video,
                f"has {frames} frames but {skel.name} has {n} "
                "(frame i of the video and of the skeleton must be the same instant)",
            )
    if clip.timestamps.is_file():
        rows = count_timestamps(clip.timestamps)
        if rows != n:
            raise FormatError(clip.timestamps, f"has {rows} rows but {skel.name} has {n} frames")
    pairs = count_flow(clip.flow)
    if pairs and pairs != n - 1:
        raise FormatError(clip.flow, f"has {pairs} flow pairs, expected {n - 1} for {n} frames")


def open_sessions(paths: Iterable[str | Path], verify: bool = True) -> list[Session]:
    """Open several sessions (:meth:`Session.open` each)."""
    return [Session.open(p, verify=verify) for p in paths]
