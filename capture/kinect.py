"""Azure Kinect (and Orbbec Femto through Orbbec's K4A wrapper) devices through pyk4a.

pyk4a is the optional ``kinect`` extra and a source package: it builds against the Azure Kinect
Sensor SDK (``k4a/k4a.h`` and libk4a), so the SDK must be installed before
``pip install "xmkd[kinect]"``. Orbbec Femto devices work with the same code when Orbbec's K4A
wrapper library stands in for libk4a. Skeletons come from the Body Tracking SDK (k4abt) through
`capture.bodytracking`.

Each device is one `KinectSource` and one NTU camera id. Several devices synchronise over the
sync cables: one ``master``, the others ``subordinate`` (each with its own
``subordinate_delay_usec``, e.g. 160 us apart so the depth lasers do not interfere); subordinates
are started before the master, as the SDK requires.

Spec: ``kinect[:INDEX[,INDEX...]][?resolution=720P&depth=NFOV_UNBINNED&fps=30&sync=...&bodies=1
&bt=gpu]`` (``sync=master`` for the first device of a list, subordinates for the others, when
several are given and ``sync`` is not set). ``bt`` is the Body Tracking SDK's processing mode:
gpu (the SDK's default), cpu, cuda, tensorrt or directml; ``bt=cpu`` tracks without a GPU.
``depth=PASSIVE_IR`` gives no depth, so it needs ``bodies=0``.

``skeleton=lifted`` (with ``pose_model=FILE`` and optionally ``det_model=FILE``, see
`capture.pose2d`) replaces the Body Tracking SDK by RTMPose 2D keypoints lifted with the depth and
the device's calibration: no k4abt, no GPU. The estimator runs on its own thread per device
(`capture.camera.EstimatorWorker`); the capture loop hands it the newest capture when it is free
and never waits for it, so the device is drained at its frame rate and frames carry the latest
finished estimate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capture.bodyids import BodyIds
from capture.bodytracking import BodyTracker, TrackerConfig, require_tracking_depth
from capture.calibration import COLOR_RESOLUTIONS, DEPTH_MODES, Calibration
from capture.camera import EstimatorWorker, _copy_body
from capture.frames import Frame, Source, host_clock_ns, option_bool, option_num
from capture.mkv import skeleton_option
from capture.pose2d import RGBD, DepthLiftedEstimator, Estimator2D, rtmpose_spec
from xmkd.errors import XmkdError, require

PYK4A_HINT = (
    "pyk4a needs the Azure Kinect Sensor SDK (or Orbbec's K4A wrapper for Femto devices) "
    'installed before `pip install "xmkd[kinect]"`'
)
FPS_CHOICES = (5, 15, 30)
SYNC_MODES = ("standalone", "master", "subordinate")
#: spacing of subordinate delays when several devices are given (the SDK's multi-device guide
#: keeps depth exposures at least 160 us apart)
SUBORDINATE_DELAY_STEP_USEC = 160


def _pyk4a() -> Any:
    return require("pyk4a", "kinect", "Azure Kinect capture", hint=PYK4A_HINT)


@dataclass
class KinectConfig:
    """One device's settings; defaults are pyk4a's (720P BGRA, NFOV unbinned, 30 fps,
    synchronized images only, standalone)."""

    color_resolution: str = "720P"
    depth_mode: str = "NFOV_UNBINNED"
    fps: int = 30
    synchronized_images_only: bool = True
    wired_sync: str = "standalone"  # standalone | master | subordinate
    subordinate_delay_usec: int = 0
    depth_delay_usec: int = 0
    bodies: bool = True  # run the Body Tracking SDK
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    timeout_ms: int = 2000  # get_capture timeout; a stalled device raises instead of hanging

    def __post_init__(self) -> None:
        self.color_resolution = self.color_resolution.upper()
        self.depth_mode = self.depth_mode.upper()
        self.wired_sync = self.wired_sync.lower()
        if self.color_resolution not in COLOR_RESOLUTIONS:
            raise XmkdError(
                f"colour resolution {self.color_resolution!r} is not one of "
                f"{sorted(COLOR_RESOLUTIONS)}"
            )
        if self.depth_mode not in DEPTH_MODES:
            raise XmkdError(f"depth mode {self.depth_mode!r} is not one of {sorted(DEPTH_MODES)}")
        if self.fps not in FPS_CHOICES:
            raise XmkdError(f"Azure Kinect fps must be one of {FPS_CHOICES}, got {self.fps}")
        if self.fps == 30 and (
            self.color_resolution == "3072P" or self.depth_mode == "WFOV_UNBINNED"
        ):
            raise XmkdError("3072P colour and WFOV_UNBINNED depth run at 15 fps at most")
        if self.wired_sync not in SYNC_MODES:
            raise XmkdError(f"sync mode {self.wired_sync!r} is not one of {SYNC_MODES}")
        if self.bodies:  # PASSIVE_IR has no depth to track bodies in
            require_tracking_depth(self.depth_mode)

    def to_pyk4a(self, pyk4a: Any) -> Any:
        """The pyk4a ``Config`` of these settings."""
        return pyk4a.Config(
            color_resolution=getattr(pyk4a.ColorResolution, f"RES_{self.color_resolution}"),
            color_format=pyk4a.ImageFormat.COLOR_BGRA32,
            depth_mode=getattr(pyk4a.DepthMode, self.depth_mode),
            camera_fps=getattr(pyk4a.FPS, f"FPS_{self.fps}"),
            synchronized_images_only=self.synchronized_images_only,
            depth_delay_off_color_usec=self.depth_delay_usec,
            wired_sync_mode=getattr(pyk4a.WiredSyncMode, self.wired_sync.upper()),
            subordinate_delay_off_master_usec=self.subordinate_delay_usec,
        )


def list_devices() -> list[dict[str, Any]]:
    """Connected devices: ``[{"index": i, "serial": ...}]``."""
    pyk4a = _pyk4a()
    devices = []
    for index in range(int(pyk4a.connected_device_count())):
        device = pyk4a.PyK4A(device_id=index)
        device.open()
        try:
            devices.append({"index": index, "serial": device.serial})
        finally:
            device.close()
    return devices


class KinectSource(Source):
    """One Azure Kinect device as a source of mirrored BGR + depth frames with NTU bodies."""

    kind = "azure-kinect"

    def __init__(
        self,
        index: int = 0,
        camera: int = 1,
        config: KinectConfig | None = None,
        max_frames: int | None = None,
        pose2d: Estimator2D | None = None,
    ):
        """``pose2d``: lift this 2D estimator's keypoints with the depth instead of running the
        Body Tracking SDK (``skeleton=lifted``; ``config.bodies`` still switches skeletons)."""
        super().__init__(camera=camera, max_frames=max_frames)
        self.index = int(index)
        self.config = config or KinectConfig()
        self.pose2d = pose2d
        self.lifted: DepthLiftedEstimator | None = None
        self._worker: EstimatorWorker | None = None
        self.fps = float(self.config.fps)
        self.serial: str | None = None
        self.calibration: Calibration | None = None
        self.calibration_raw: str | None = None
        self.tracker: BodyTracker | None = None
        self._device: Any = None

    @property
    def description(self) -> str:
        serial = f" {self.serial}" if self.serial else ""
        lifted = f", {self.pose2d.name} poses lifted with depth" if self.pose2d else ""
        return (
            f"azure-kinect #{self.index}{serial} ({self.config.color_resolution}, "
            f"{self.config.depth_mode}, {self.config.fps} fps, {self.config.wired_sync}{lifted})"
        )

    @property
    def estimator_dropped(self) -> int:
        """Captures the lifted estimator had no time for (they carry the previous estimate)."""
        return self._worker.dropped if self._worker is not None else 0

    def _open(self) -> None:
        pyk4a = _pyk4a()
        count = int(pyk4a.connected_device_count())
        if self.index >= count:
            raise XmkdError(
                f"Azure Kinect #{self.index} is not connected ({count} device(s) found)"
            )
        self._device = pyk4a.PyK4A(config=self.config.to_pyk4a(pyk4a), device_id=self.index)
        try:
            self._device.start()
        except Exception as exc:  # pyk4a raises K4AException without a message
            raise XmkdError(
                f"Azure Kinect #{self.index} did not start ({exc.__class__.__name__}: {exc}); "
                "check the USB 3 connection, the power supply, and that no other program uses it"
            ) from exc
        self.serial = self._device.serial
        self.calibration_raw = self._device.calibration_raw
        self.calibration = Calibration.from_json(
            self.calibration_raw, self.config.depth_mode, self.config.color_resolution,
            source=f"Azure Kinect {self.serial} calibration",
        )  # fmt: skip
        if self.config.bodies and self.pose2d is not None:
            self.lifted = DepthLiftedEstimator(self.pose2d, self.calibration)
            self._worker = EstimatorWorker(self.lifted, BodyIds())  # type: ignore[arg-type]
        elif self.config.bodies:
            try:
                self.tracker = BodyTracker(
                    self.calibration_raw,
                    self.config.depth_mode,
                    self.config.color_resolution,
                    self.config.tracker,
                )
            except XmkdError:
                self._device.stop()
                raise

    def _close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
        if self._device is not None:
            self._device.stop()
            self._device = None

    def device_info(self) -> dict[str, Any]:
        info = super().device_info()
        info.update(
            serial=self.serial,
            index=self.index,
            calibration=self.calibration.raw if self.calibration else None,
            color_resolution=self.config.color_resolution,
            depth_mode=self.config.depth_mode,
            fps=self.config.fps,
            wired_sync=self.config.wired_sync,
            subordinate_delay_usec=self.config.subordinate_delay_usec,
            body_tracking=self.tracker is not None,
        )
        return info

    def _get_capture(self) -> Any:
        try:
            return self._device.get_capture(timeout=self.config.timeout_ms)
        except Exception as exc:  # K4ATimeoutException / K4AException
            raise XmkdError(
                f"Azure Kinect #{self.index} delivered no capture for "
                f"{self.config.timeout_ms} ms ({exc.__class__.__name__}); "
                "a subordinate needs its master running and the sync cable connected"
            ) from exc

    def _frames(self) -> Iterator[Frame]:
        """Drain the device continuously; with body tracking, captures are pipelined through
        k4abt's queue (enqueue now, pop when ready, in order) so a tracker slower than the
        camera delays frames instead of stalling the device between captures."""
        pending: deque[Any] = deque()
        index = 0
        while True:
            capture = self._get_capture()
            if self.tracker is None:
                yield self._frame(index, capture, [])
                index += 1
                continue
            while not self.tracker.enqueue_pyk4a(capture, 0):  # tracker queue full
                bodies = self.tracker.pop(self.config.tracker.timeout_ms)
                if bodies is not None:
                    yield self._frame(index, pending.popleft(), bodies)
                    index += 1
            pending.append(capture)
            while pending:
                bodies = self.tracker.pop(0)
                if bodies is None:
                    break
                yield self._frame(index, pending.popleft(), bodies)
                index += 1

    def _frame(self, index: int, capture: Any, bodies: list) -> Frame:
        color = capture.color
        depth = capture.depth
        if self._worker is not None and color is not None and depth is not None:
            # pyk4a's arrays own their k4a buffers (freed with the last reference), so views
            # are safe to hand over; no copy on the capture thread. Handing over never waits.
            self._worker.submit(index, RGBD(color[:, :, :3], depth))  # type: ignore[arg-type]
            bodies = [_copy_body(b) for b in self._worker.latest()[1]]
        if color is not None:
            color = np.ascontiguousarray(color[:, ::-1, :3])  # BGRA -> BGR, mirrored
        device_usec = capture.depth_timestamp_usec if depth is not None else None
        if not device_usec:
            device_usec = capture.color_timestamp_usec
        host_nsec = capture.color_system_timestamp_nsec if color is not None else 0
        if depth is not None:
            depth = np.ascontiguousarray(depth[:, ::-1])
        return Frame(
            index=index,
            color=color,
            depth=depth,
            bodies=bodies,
            device_usec=int(device_usec),
            host_nsec=int(host_nsec or host_clock_ns()),
            camera=self.camera,
        )


def kinect_sources(
    arg: str, options: dict[str, str], first_camera: int, **overrides: Any
) -> list[Source]:
    """Sources for ``kinect[:0,1,...]``: camera ids count up from ``first_camera`` in the order
    given; with several devices the first is the sync master unless ``sync`` says otherwise, and
    the returned list starts subordinates before the master (the SDK's start order)."""
    indices = [int(i) for i in arg.split(",") if i.strip()] if arg else [0]
    sync = options.pop("sync", None)
    base = {
        "color_resolution": options.pop("resolution", "720P"),
        "depth_mode": options.pop("depth", "NFOV_UNBINNED"),
        "fps": option_num(options, "fps", 30),
        "synchronized_images_only": option_bool(options, "synchronized", True),
        "bodies": option_bool(options, "bodies", True),
    }
    bt_mode = options.pop("bt", None)  # k4abt processing mode: gpu | cpu | cuda | tensorrt | ...
    lifted = skeleton_option(options) == "lifted" and "pose2d" not in overrides
    spec = rtmpose_spec(options) if lifted else None  # a missing model: one sentence now
    sources: list[KinectSource] = []
    for k, index in enumerate(indices):
        if sync:
            mode = sync
        else:
            mode = "standalone" if len(indices) == 1 else ("master" if k == 0 else "subordinate")
        tracker = TrackerConfig() if bt_mode is None else TrackerConfig(processing_mode=bt_mode)
        config = KinectConfig(
            wired_sync=mode,
            subordinate_delay_usec=SUBORDINATE_DELAY_STEP_USEC * k if mode == "subordinate" else 0,
            tracker=tracker,
            **base,
        )
        if spec is not None:  # one estimator per device: each runs on its device's worker
            overrides = {**overrides, "pose2d": spec.build()}
        sources.append(KinectSource(index, camera=first_camera + k, config=config, **overrides))
    return sorted(sources, key=lambda s: s.config.wired_sync == "master")
