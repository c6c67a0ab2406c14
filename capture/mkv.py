"""Azure Kinect MKV playback without the Sensor SDK, through PyAV.

An Azure Kinect recording (k4arecorder, pyk4a's PyK4ARecord) is a Matroska file with a COLOR
track (MJPEG here; NV12/YUY2/BGRA decode the same way), DEPTH and IR tracks (``b16g``: 16-bit
big-endian, decoded as gray16be), an IMU track and a ``calibration.json`` attachment. Packet pts
are microseconds from the recording start; ``pts + K4A_START_OFFSET_NS / 1000`` is the device
timestamp. Colour and depth frames are mirrored horizontally like NTU's videos. Skeletons come
from the Body Tracking SDK when it is installed (`capture.bodytracking`); without it the source
still plays and says once (logging) that skeletons need the SDK. With ``?skeleton=lifted`` they
come from a 2D pose estimator lifted with the recording's depth and calibration instead
(`capture.pose2d.DepthLiftedEstimator`, no Body Tracking SDK): every frame in order by default,
off the playback thread with ``realtime=1`` (frames it has no time for carry the last estimate).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from capture.bodyids import BodyIds
from capture.bodytracking import BodyTracker, TrackerConfig, try_body_tracker
from capture.calibration import Calibration
from capture.camera import EstimatorWorker, _copy_body, assign_ids
from capture.frames import Frame, Pacer, Source, host_clock_ns, option_bool
from capture.pose2d import RGBD, DepthLiftedEstimator, Estimator2D, rtmpose_from_options
from xmkd.errors import FormatError, XmkdError

log = logging.getLogger(__name__)


def _track_of(container: Any, title: str) -> Any | None:
    for stream in container.streams:
        if stream.type == "video" and stream.metadata.get("title", "").upper() == title:
            return stream
    return None


class MKVSource(Source):
    """Plays an Azure Kinect MKV: ``mkv:PATH[?realtime=1&bodies=1&mirror=1&camera=N&bt=gpu
    &skeleton=sdk|lifted&pose_model=FILE&det_model=FILE]`` (``bt``: the Body Tracking SDK's
    processing mode, gpu | cpu | cuda | tensorrt | directml; ``bt=cpu`` tracks without a GPU;
    ``skeleton=lifted``: RTMPose 2D keypoints lifted with the depth, see `capture.pose2d`)."""

    kind = "azure-kinect-recording"

    def __init__(
        self,
        path: str | Path,
        camera: int = 1,
        realtime: bool = False,
        bodies: bool = True,
        mirror: bool = True,
        tracker_config: TrackerConfig | None = None,
        max_frames: int | None = None,
        pose2d: Estimator2D | None = None,
    ):
        """``pose2d``: lift this 2D estimator's keypoints with the depth instead of running the
        Body Tracking SDK (what ``skeleton=lifted`` gives)."""
        super().__init__(camera=camera, max_frames=max_frames)
        self.path = Path(path)
        self.realtime = realtime
        self.want_bodies = bodies
        self.mirror = mirror
        self.tracker_config = tracker_config
        self.tracker: BodyTracker | None = None
        self.pose2d = pose2d
        self.lifted: DepthLiftedEstimator | None = None
        self._worker: EstimatorWorker | None = None
        self._ids = BodyIds()
        self.calibration: Calibration | None = None
        self.calibration_json: str | None = None
        self.tags: dict[str, str] = {}
        self._container: Any = None
        self.skeleton_note: str | None = None

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> MKVSource:
        kwargs: dict[str, Any] = {
            "realtime": option_bool(options, "realtime", False),
            "bodies": option_bool(options, "bodies", True),
            "mirror": option_bool(options, "mirror", True),
        }
        bt_mode = options.pop("bt", None)
        if bt_mode is not None:
            kwargs["tracker_config"] = TrackerConfig(processing_mode=bt_mode)
        if skeleton_option(options) == "lifted" and "pose2d" not in overrides:
            kwargs["pose2d"] = rtmpose_from_options(options)  # a missing model: one sentence now
        kwargs.update(overrides)
        return cls(arg, camera=camera, **kwargs)

    @property
    def description(self) -> str:
        how = f" ({self.pose2d.name} poses lifted with depth)" if self.pose2d else ""
        return f"Azure Kinect recording {self.path}{how}"

    @property
    def estimator_dropped(self) -> int:
        """Frames the lifted estimator had no time for (they carry the previous estimate)."""
        return self._worker.dropped if self._worker is not None else 0

    def _open(self) -> None:
        import av

        if not self.path.is_file():
            raise XmkdError(f"{self.path}: no such MKV recording")
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as exc:
            raise FormatError(self.path, f"cannot be opened as Matroska ({exc})") from exc
        container = self._container
        self.tags = {k: str(v) for k, v in container.metadata.items()}
        self._color = _track_of(container, "COLOR")
        self._depth = _track_of(container, "DEPTH")
        self._ir = _track_of(container, "IR")
        if self._color is None and self._depth is None:
            raise FormatError(self.path, "has neither a COLOR nor a DEPTH track (not from k4a)")
        main = self._color or self._depth
        rate = main.average_rate or main.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.start_offset_usec = int(self.tags.get("K4A_START_OFFSET_NS", "0")) // 1000
        for stream in container.streams:
            if stream.type == "attachment" and stream.name == "calibration.json":
                self.calibration_json = bytes(stream.data).decode()
        depth_mode = (self._depth.metadata.get("K4A_DEPTH_MODE") if self._depth else None) or ""
        color_mode = (self._color.metadata.get("K4A_COLOR_MODE") if self._color else None) or ""
        color_res = color_mode.split("_")[-1] if color_mode else "720P"
        if self.calibration_json:
            self.calibration = Calibration.from_json(
                self.calibration_json,
                depth_mode or "NFOV_UNBINNED",
                color_res,
                source=f"{self.path} (calibration.json)",
            )
        if self.want_bodies and self.pose2d is not None:
            self._open_lifted()
        elif self.want_bodies and self.tracker is None:
            self.tracker = self._make_tracker(depth_mode, color_res)

    def _open_lifted(self) -> None:
        assert self.pose2d is not None
        if self._color is None or self._depth is None or self.calibration is None:
            raise XmkdError(
                f"{self.path}: skeleton=lifted needs the COLOR and DEPTH tracks and the "
                "calibration, and the recording lacks one"
            )
        self.lifted = DepthLiftedEstimator(self.pose2d, self.calibration)
        if self.realtime:
            self._worker = EstimatorWorker(self.lifted, self._ids)  # type: ignore[arg-type]

    def _make_tracker(self, depth_mode: str, color_res: str) -> BodyTracker | None:
        if self._depth is None or self._ir is None or not self.calibration_json:
            self.skeleton_note = "the recording has no depth+IR tracks or no calibration"
            log.warning("%s: no skeletons: %s", self.path, self.skeleton_note)
            return None
        notes: list[str] = []
        tracker = try_body_tracker(
            lambda: BodyTracker(
                self.calibration_json or "", depth_mode, color_res, self.tracker_config
            ),
            notes.append,
        )
        if tracker is None:
            self.skeleton_note = notes[0]
            log.warning("%s: frames play without skeletons: %s", self.path, notes[0])
        return tracker

    def _close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def device_info(self) -> dict[str, Any]:
        info = super().device_info()
        info["serial"] = self.tags.get("K4A_DEVICE_SERIAL_NUMBER")
        info["calibration"] = self.calibration.raw if self.calibration else None
        info["color_mode"] = self._color.metadata.get("K4A_COLOR_MODE") if self._color else None
        info["depth_mode"] = self._depth.metadata.get("K4A_DEPTH_MODE") if self._depth else None
        return info

    def _frames(self) -> Iterator[Frame]:
        streams = [s for s in (self._color, self._depth, self._ir) if s is not None]
        pacer = Pacer(self.fps, self.realtime)
        for index, (start, images) in enumerate(
            group_captures(self._decoded(streams), len(streams), 1e6 / self.fps)
        ):
            yield self._make_frame(index, start, images)
            pacer.wait()

    def _decoded(self, streams: list[Any]) -> Iterator[tuple[str, int, Any]]:
        for packet in self._container.demux(streams):
            if packet.pts is None:  # flush packets at the end
                continue
            key = packet.stream.metadata.get("title", "").upper()
            try:
                decoded = packet.decode()
            except Exception as exc:  # noqa: BLE001 - PyAV raises several error classes
                raise FormatError(self.path, f"{key} frame at pts {packet.pts}: {exc}") from exc
            if decoded:
                yield key, int(packet.pts), decoded[-1]

    def _make_frame(self, index: int, pts: int, images: dict[str, Any]) -> Frame:
        color = images["COLOR"].to_ndarray(format="bgr24") if "COLOR" in images else None
        depth = images["DEPTH"].to_ndarray() if "DEPTH" in images else None
        ir = images["IR"].to_ndarray() if "IR" in images else None
        if "DEPTH" in images and images["DEPTH"].pts is not None:
            pts = int(images["DEPTH"].pts)  # k4a and k4abt time a capture by its depth image
        device_usec = pts + self.start_offset_usec
        bodies = []
        if self.tracker is not None and depth is not None and ir is not None:
            bodies = self.tracker.track_images(depth, ir, device_usec)
        elif self.lifted is not None and color is not None and depth is not None:
            bodies = self._lifted_bodies(index, RGBD(color, depth))
        if self.mirror:  # NTU's videos are mirrored; the body pixels already are
            color = None if color is None else np.ascontiguousarray(color[:, ::-1])
            depth = None if depth is None else np.ascontiguousarray(depth[:, ::-1])
        return Frame(
            index=index,
            color=color,
            depth=depth,
            bodies=bodies,
            device_usec=int(device_usec),
            host_nsec=host_clock_ns(),
            camera=self.camera,
        )

    def _lifted_bodies(self, index: int, rgbd: RGBD) -> list:
        """Bodies of this capture (their pixels already mirrored like NTU's): estimated now when
        playing as fast as possible, else the worker's latest estimate."""
        assert self.lifted is not None
        if self._worker is None:
            return assign_ids(self.lifted.estimate(rgbd), self._ids)
        self._worker.submit(index, rgbd)  # type: ignore[arg-type]
        return [_copy_body(b) for b in self._worker.latest()[1]]


def skeleton_option(options: dict[str, str]) -> str:
    """The ``skeleton`` source option: ``sdk`` (the Body Tracking SDK, the default) or
    ``lifted`` (2D keypoints lifted with depth); pops it."""
    value = options.pop("skeleton", "sdk").strip().lower()
    if value not in ("sdk", "lifted"):
        raise XmkdError(f"source option skeleton={value!r} must be sdk or lifted")
    return value


def group_captures(
    images: Iterable[tuple[str, int, Any]], tracks: int, period_usec: float
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Group (track, pts, image) in file order into captures as k4a playback does.

    Images of one capture carry (nearly) the same timestamp (colour and depth differ by the
    depth delay), so an image joins the open capture within half a frame period that lacks its
    track. A capture is emitted when every track is in, or incomplete once the stream has moved a
    frame period past it (a dropped image), so memory stays bounded on long recordings.
    """
    half = period_usec / 2
    pending: list[tuple[int, dict[str, Any]]] = []  # (pts of the first image, images)
    for key, pts, image in images:
        for start, group in pending:
            if key not in group and abs(pts - start) <= half:
                group[key] = image
                break
        else:
            pending.append((pts, {key: image}))
            pending.sort(key=lambda item: item[0])
        while pending and (len(pending[0][1]) == tracks or pts - pending[0][0] > 2 * half):
            yield pending.pop(0)
    yield from pending
