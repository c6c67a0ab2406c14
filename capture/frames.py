"""The types every capture source kind builds on: `Frame`, `Body`, the `Source` base, drop
counting, real-time pacing, the option helpers kinds parse their ``?key=value`` options with, and
the Frame <-> NTU ``SkeletonSequence`` conversion.

A `Frame` is one synchronized instant of one device: colour image (BGR uint8, mirrored like
NTU's videos), optional depth (uint16 mm, mirrored the same way), the bodies seen, the device
timestamp (microseconds, the sensor's clock) and the host timestamp (nanoseconds,
``time.perf_counter_ns``, the clock of pyk4a's system timestamps). A `Body` carries NTU-25
joints in metres in NTU/Kinect v2 camera axes with their (mirrored) colour/depth pixel
coordinates, NTU tracking states (0 not tracked, 1 inferred, 2 tracked) and orientations (wxyz).

Source kinds (``capture.synthetic``, ``capture.mkv``, ...) import this module and nothing of the
registry (`capture.registry`), which imports the kinds lazily by name: no import circle.
``capture.source`` re-exports both for existing callers.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from xmkd.errors import XmkdError
from xmkd.skeleton import NUM_JOINTS


def host_clock_ns() -> int:
    """Now on the host clock of `Frame.host_nsec`: everything compared with a frame's arrival
    (live latency) must read this clock. It is ``time.perf_counter_ns``, the clock of the Azure
    Kinect SDK's system timestamps (QueryPerformanceCounter on Windows, CLOCK_MONOTONIC on
    Linux); ``time.monotonic_ns`` is another clock on Windows before Python 3.13."""
    return time.perf_counter_ns()


if TYPE_CHECKING:  # the NTU format module is imported lazily (it belongs to another part)
    from xmkd.ntu import SkeletonSequence

#: NTU body-info fields written for a body that a sensor reports without hand/lean estimates:
#: clipedEdges 0, hand confidence 0 with state 0 (unknown), not restricted, no lean, tracked.
DEFAULT_BODY_INFO: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0)


@dataclass
class Body:
    """One tracked body in NTU-25 layout (metres, NTU/Kinect v2 camera axes)."""

    id: int
    joints: np.ndarray  # (25, 3) float64 metres
    color_px: np.ndarray = field(default=None)  # type: ignore[assignment]  # (25, 2) float64
    depth_px: np.ndarray = field(default=None)  # type: ignore[assignment]  # (25, 2) float64
    tracking: np.ndarray = field(default=None)  # type: ignore[assignment]  # (25,) int 0/1/2
    orientation: np.ndarray = field(default=None)  # type: ignore[assignment]  # (25, 4) wxyz
    #: NTU's per-body fields (clipedEdges ... trackingState); see DEFAULT_BODY_INFO.
    info: np.ndarray = field(default=None)  # type: ignore[assignment]  # (9,) float64

    def __post_init__(self) -> None:
        self.id = int(self.id)
        self.joints = np.asarray(self.joints, dtype=np.float64).reshape(NUM_JOINTS, 3)
        if self.color_px is None:
            self.color_px = np.zeros((NUM_JOINTS, 2))
        if self.depth_px is None:
            self.depth_px = np.zeros((NUM_JOINTS, 2))
        if self.tracking is None:
            self.tracking = np.full(NUM_JOINTS, 2, dtype=np.int64)
        if self.orientation is None:
            self.orientation = np.tile([1.0, 0.0, 0.0, 0.0], (NUM_JOINTS, 1))
        if self.info is None:
            self.info = np.array(DEFAULT_BODY_INFO)
        self.color_px = np.asarray(self.color_px, dtype=np.float64).reshape(NUM_JOINTS, 2)
        self.depth_px = np.asarray(self.depth_px, dtype=np.float64).reshape(NUM_JOINTS, 2)
        self.tracking = np.asarray(self.tracking, dtype=np.int64).reshape(NUM_JOINTS)
        self.orientation = np.asarray(self.orientation, dtype=np.float64).reshape(NUM_JOINTS, 4)
        self.info = np.asarray(self.info, dtype=np.float64).reshape(9)

    def ntu_joint_rows(self) -> np.ndarray:
        """The (25, 12) rows of an NTU ``.skeleton`` body: x y z depthX depthY colorX colorY
        orientationW X Y Z trackingState."""
        return np.concatenate(
            [self.joints, self.depth_px, self.color_px, self.orientation, self.tracking[:, None]],
            axis=1,
        )


@dataclass
class Frame:
    """One synchronized instant of one device.

    Sources that play labeled clips one after the other (the synthetic source, NTU replay) also
    say which clip a frame belongs to and what its action is, so that live predictions can be
    scored against the truth (``xmkd live --json``); a camera leaves these at their defaults.
    """

    index: int  # 0-based frame number in this source's stream
    color: np.ndarray | None  # (H, W, 3) BGR uint8, mirrored like NTU videos
    depth: np.ndarray | None  # (H, W) uint16 millimetres, mirrored the same way
    bodies: list[Body]
    device_usec: int  # the sensor's clock (or the stream's clock for files), microseconds
    host_nsec: int  # host clock when the frame arrived (time.perf_counter_ns), nanoseconds
    camera: int = 1  # NTU camera id (one per device)
    #: ordinal of the clip (synthetic action, replayed file) this frame belongs to; None for a
    #: continuous stream such as a camera
    clip: int | None = None
    #: True on the last frame of a clip (the frame a clip's prediction is scored at)
    clip_end: bool = False
    #: 0-based class of the clip's action in the training convention (NTU action number - 1,
    #: the label ``xmkd eval`` scores against); None when unknown or unlabeled (A000)
    label: int | None = None
    #: the source's own name for that action (a synthetic class name, or "A001"); None if unknown
    truth: str | None = None


class DropCounter:
    """Counts frames lost between consecutive device timestamps.

    A gap longer than 1.5 frame periods means ``round(gap / period) - 1`` frames never arrived
    (the device or the USB/host side lost them); the count is what session.json reports.
    """

    def __init__(self, fps: float):
        self.period_usec = 1e6 / float(fps)
        self.dropped = 0
        self.gaps: list[tuple[int, int]] = []  # (frame index after the gap, frames lost)
        self._last: int | None = None

    def update(self, device_usec: int, index: int = -1) -> int:
        """Feed the next timestamp; returns the frames lost just before it."""
        lost = 0
        if self._last is not None:
            gap = device_usec - self._last
            if gap > 1.5 * self.period_usec:
                lost = max(1, int(round(gap / self.period_usec)) - 1)
                self.dropped += lost
                self.gaps.append((index, lost))
        self._last = device_usec
        return lost


def count_dropped(device_usec: Sequence[int], fps: float) -> int:
    """Frames lost in a sequence of device timestamps (gaps > 1.5 frame periods)."""
    counter = DropCounter(fps)
    for i, t in enumerate(device_usec):
        counter.update(int(t), i)
    return counter.dropped


class Source(abc.ABC):
    """Base of every source: ``with open_source(spec) as src: for frame in src: ...``.

    Subclasses implement `_open`, `_close` and `_frames`; the base keeps the frame index, the
    dropped-frame count (from device timestamps), real-time pacing for file/synthetic sources and
    the open/closed state.
    """

    #: frames per second the source delivers (nominal)
    fps: float = 30.0
    #: NTU camera id of this source's device
    camera: int = 1
    #: what produced the data, for session.json "source" (e.g. "azure-kinect", "synthetic")
    kind: str = "unknown"

    def __init__(self, camera: int = 1, max_frames: int | None = None):
        self.camera = int(camera)
        self.max_frames = max_frames
        self._opened = False
        self._drops: DropCounter | None = None
        self._stop = False

    # ---- to implement ------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    @abc.abstractmethod
    def _frames(self) -> Iterator[Frame]: ...

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """One line naming the source (shown in the GUI and written to session.json)."""

    def device_info(self) -> dict[str, Any]:
        """This device's entry for session.json ``devices`` (camera, serial, calibration...)."""
        return {"camera": self.camera, "serial": None, "source": self.description}

    # ---- common behaviour ----------------------------------------------------------------
    @property
    def dropped_frames(self) -> int:
        """Frames lost so far according to the device timestamps."""
        return self._drops.dropped if self._drops is not None else 0

    @property
    def is_open(self) -> bool:
        return self._opened

    def open(self) -> Source:
        if not self._opened:
            self._open()
            self._opened = True
            self._stop = False
            self._drops = DropCounter(self.fps)
        return self

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._close()

    def stop(self) -> None:
        """Ask a running iteration to end after the current frame (thread-safe)."""
        self._stop = True

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if not self._opened:
            self.open()
        assert self._drops is not None
        count = 0
        for frame in self._frames():
            if self._stop:
                break
            self._drops.update(frame.device_usec, frame.index)
            yield frame
            count += 1
            if self.max_frames is not None and count >= self.max_frames:
                break

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class Pacer:
    """Sleeps so that frames come out at ``fps`` in wall-clock time (for file/synthetic sources
    played in real time); a consumer that falls behind is not made to wait further."""

    def __init__(self, fps: float, realtime: bool = True):
        self.period = 1.0 / float(fps)
        self.realtime = realtime
        self._start: float | None = None
        self._n = 0

    def wait(self) -> None:
        if not self.realtime:
            return
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        due = self._start + self._n * self.period
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # far behind (e.g. paused in a debugger): re-anchor
            self._start = now - self._n * self.period
        self._n += 1

    def missed(self) -> int:
        """Frame periods that have already passed beyond the next due frame; a device would have
        dropped those frames (live sources skip them so their timestamps show the gap)."""
        if not self.realtime or self._start is None:
            return 0
        behind = (time.perf_counter() - (self._start + self._n * self.period)) / self.period
        late = int(behind)
        if late > 0:
            self._n += late
        return max(late, 0)


# ------------------------------------------------------------------------------------------
# Frames -> NTU skeleton sequence (the one place this conversion lives)
def bodies_to_sequence(frames_bodies: Sequence[Sequence[Body]]) -> SkeletonSequence:
    """NTU `SkeletonSequence` of per-frame body lists (a frame without bodies has count 0)."""
    from xmkd.ntu import SkeletonSequence

    counts = np.array([len(b) for b in frames_bodies], dtype=np.int64)
    flat = [body for bodies in frames_bodies for body in bodies]
    ids = np.array([b.id for b in flat], dtype=np.uint64)
    joints = (
        np.stack([b.ntu_joint_rows() for b in flat])
        if flat
        else np.zeros((0, NUM_JOINTS, 12), dtype=np.float64)
    )
    info = np.stack([b.info for b in flat]) if flat else np.zeros((0, 9), dtype=np.float64)
    return SkeletonSequence.from_arrays(counts, ids, joints, body_info=info)


def frames_to_sequence(frames: Sequence[Frame]) -> SkeletonSequence:
    """NTU `SkeletonSequence` of a list of frames (their bodies, in order)."""
    return bodies_to_sequence([f.bodies for f in frames])


def sequence_to_bodies(seq: SkeletonSequence) -> list[list[Body]]:
    """Per-frame `Body` lists of an NTU `SkeletonSequence` (the inverse of bodies_to_sequence)."""
    out: list[list[Body]] = []
    k = 0
    for count in np.asarray(seq.body_counts):
        bodies = []
        for _ in range(int(count)):
            rows = np.asarray(seq.joints[k])
            bodies.append(
                Body(
                    id=int(seq.body_ids[k]),
                    joints=rows[:, 0:3],
                    depth_px=rows[:, 3:5],
                    color_px=rows[:, 5:7],
                    orientation=rows[:, 7:11],
                    tracking=rows[:, 11].astype(np.int64),
                    info=np.asarray(seq.body_info[k]),
                )
            )
            k += 1
        out.append(bodies)
    return out


# ------------------------------------------------------------------------------------------
# Option helpers for the kinds' ``?key=value`` options
def option_bool(options: dict[str, str], key: str, default: bool) -> bool:
    value = options.pop(key, None)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise XmkdError(f"source option {key}={value!r} must be 0 or 1")


def option_num(options: dict[str, str], key: str, default: Any, kind: type = int) -> Any:
    value = options.pop(key, None)
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError as exc:
        raise XmkdError(f"source option {key}={value!r} must be a number") from exc
