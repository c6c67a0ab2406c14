"""Orbbec RGB-D cameras (Femto Bolt / Femto Mega, Gemini, Astra) through Orbbec's Python SDK v2
as sources: ``orbbec[:INDEX[,INDEX...]]``, with skeletons from the depth-lifted estimator.

Orbbec's SDK v2 ships on PyPI as ``pyorbbecsdk2`` (imported as ``pyorbbecsdk``; the ``orbbec``
extra). It has no body tracking, so skeletons come from a 2D keypoint estimator on the colour
image lifted to metres with the depth aligned to colour and the colour intrinsics the SDK reports
(`capture.lifting.DepthLifter`), run off the capture thread by `capture.camera.EstimatorWorker`:
a slow estimator never makes the device drop frames; frames carry the latest finished estimate.

What is used of the SDK, per device:

* ``Context().query_devices()`` -> ``DeviceList.get_device_by_index(i)``; ``Pipeline(device)``;
  ``Config.enable_stream(profile)`` with the colour profile ``WIDTHxHEIGHT`` RGB at ``fps`` and
  the depth sensor's default Y16 profile at the same rate (``get_stream_profile_list(...)
  .get_video_stream_profile(...)``); ``set_frame_aggregate_output_mode(FULL_FRAME_REQUIRE)`` and
  ``Pipeline.enable_frame_sync()`` so each frame set has a colour and a depth frame of one instant.
* Depth aligned to colour: ``align=sw`` (default) runs ``AlignFilter(OBStreamType.COLOR_STREAM)``
  on each frame set (every device); ``align=hw`` asks the device (``Config.set_align_mode(
  OBAlignMode.HW_MODE)``; Femto Mega, Gemini 2). Depth is scaled to millimetres with
  ``DepthFrame.get_depth_scale()``.
* Timestamps: ``Frame.get_timestamp_us()`` of the colour frame (the device clock, microseconds)
  is `Frame.device_usec`; dropped frames are counted from its gaps (`capture.frames.DropCounter`).
* Intrinsics: ``Pipeline.get_camera_param().rgb_intrinsic`` (fx, fy, cx, cy at its width and
  height, scaled to the colour stream's size when they differ); aligned depth is in the colour
  camera's geometry, so the lifting unprojects with these. Lens distortion is not applied
  (pinhole: the Femto's colour distortion is small near the image centre; not measured here).
* Multi-device sync (hardware, over Orbbec's sync hub or cables): with several indices the first
  device is ``PRIMARY`` and the others ``SECONDARY_SYNCED`` (``Device.set_multi_device_sync_
  config``), each secondary's depth delayed 160 us more than the previous one (as for Azure
  Kinects, so the time-of-flight lasers do not interfere), secondaries are started before the
  primary, and ``Context.enable_multi_device_sync(60000)`` re-syncs the devices' clocks to the
  host every minute so their timestamps compare. ``sync=standalone|primary|secondary|free``
  overrides the mode for every device given. Software triggering is not used.

Spec: ``orbbec[:INDEX[,INDEX...]][?width=1280&height=720&fps=30&align=sw&sync=...&
skeleton=lifted&pose_model=FILE&det_model=FILE&mirror=1&timeout=2000]``: the 2D estimator is
`capture.pose2d`'s RTMPose (``pose_model``/``det_model``/``pose_threads`` as for
``kinect:N?skeleton=lifted``); ``skeleton=none`` records colour and depth without skeletons.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from capture.bodyids import BodyIds
from capture.camera import EstimatorWorker, _copy_body
from capture.frames import Body, Frame, Source, host_clock_ns, option_bool, option_num
from capture.lifting import DepthLifter, Intrinsics
from capture.pose2d import RGBD, Estimator2D, rtmpose_spec
from xmkd.errors import XmkdError, require
from xmkd.skeleton import mirror_pixels

ORBBEC_HINT = (
    "install Orbbec's Python SDK v2 with: pip install pyorbbecsdk2 (or pip install "
    '"xmkd[orbbec]"), and on Linux its udev rules so the camera opens without root (sudo bash '
    "scripts/install_udev_rules.sh from github.com/orbbec/pyorbbecsdk, then sudo udevadm control "
    "--reload-rules && sudo udevadm trigger, and replug the camera)"
)
SYNC_MODES = {
    "standalone": "STANDALONE",
    "primary": "PRIMARY",
    "secondary": "SECONDARY_SYNCED",
    "free": "FREE_RUN",
}
ALIGN_MODES = ("sw", "hw")
SKELETONS = ("lifted", "none")
#: depth delay between successive secondaries (the Azure Kinect multi-device guide's spacing)
SECONDARY_DELAY_STEP_USEC = 160
#: how often the SDK re-syncs the devices' clocks with the host when several are used
CLOCK_SYNC_INTERVAL_MS = 60000
#: how long one ``wait_for_frames`` call may block (the stop flag is checked in between)
_POLL_MS = 100


def _pyorbbecsdk() -> Any:
    return require("pyorbbecsdk", "orbbec", "Orbbec capture", hint=ORBBEC_HINT)


_CONTEXT: Any = None


def _context(ob: Any) -> Any:
    """One SDK context per process (Orbbec's samples share one for every device)."""
    global _CONTEXT
    if _CONTEXT is None or getattr(_CONTEXT, "_xmkd_module", None) is not ob:
        _CONTEXT = ob.Context()
        try:
            _CONTEXT._xmkd_module = ob  # a new (or faked) SDK module gets its own context
        except AttributeError:  # a native object without a __dict__
            pass
    return _CONTEXT


def list_devices() -> list[dict[str, Any]]:
    """Connected Orbbec devices: ``[{"index": i, "serial": ..., "name": ...}]``."""
    ob = _pyorbbecsdk()
    devices = _context(ob).query_devices()
    return [
        {
            "index": i,
            "serial": devices.get_device_serial_number_by_index(i),
            "name": devices.get_device_name_by_index(i),
        }
        for i in range(int(devices.get_count()))
    ]


# ---- the depth-lifted estimator ---------------------------------------------------------------
class AlignedDepthLiftedEstimator:
    """2D keypoints (`capture.pose2d.Estimator2D`) lifted with depth already aligned to the
    colour image and the colour intrinsics (`DepthLifter`): ``estimate(RGBD)`` gives NTU bodies,
    so `EstimatorWorker` runs it off the capture thread like any other estimator. (The Azure
    Kinect's `capture.pose2d.DepthLiftedEstimator` instead moves the depth camera's image into
    the colour camera with the Kinect calibration; Orbbec's SDK aligns it already.) Colour pixels
    are the unmirrored image's, as `capture.camera.Estimator` says; keypoints whose depth is not
    trusted are "inferred", keypoints the estimator scored low stay as the score says."""

    def __init__(self, estimator: Estimator2D, camera: Intrinsics, radius: int = 4):
        self.estimator = estimator
        self.name = f"{estimator.name}+depth"
        self.lifter = DepthLifter(camera, estimator.layout, radius=radius, mirrored=False)

    def estimate(self, rgbd: RGBD) -> list[Body]:
        bodies = []
        for person in self.estimator.estimate2d(rgbd.color):
            lifted = self.lifter.lift(person.keypoints, rgbd.depth, person.states())
            if lifted is None:
                continue
            body = lifted.body
            # the lifter reports NTU's mirrored pixels; the protocol wants the camera's view
            body.color_px[:, 0] = mirror_pixels(body.color_px[:, 0], self.lifter.width)
            body.depth_px[:, 0] = mirror_pixels(body.depth_px[:, 0], self.lifter.width)
            bodies.append(body)
        return bodies

    def close(self) -> None:
        self.estimator.close()


# ---- the source -------------------------------------------------------------------------------
@dataclass
class OrbbecConfig:
    """One device's settings (defaults: 1280x720 RGB colour, 30 fps, software alignment)."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    align: str = "sw"  # sw: AlignFilter on the host | hw: the device's D2C
    sync: str = "standalone"  # standalone | primary | secondary | free
    depth_delay_usec: int = 0
    skeleton: str = "lifted"  # lifted (2D keypoints + depth) | none
    mirror: bool = True
    timeout_ms: int = 2000

    def __post_init__(self) -> None:
        self.align = self.align.lower()
        self.sync = self.sync.lower()
        self.skeleton = self.skeleton.lower()
        if self.align not in ALIGN_MODES:
            raise XmkdError(f"source option align={self.align!r} is not one of {ALIGN_MODES}")
        if self.sync not in SYNC_MODES:
            raise XmkdError(f"source option sync={self.sync!r} is not one of {tuple(SYNC_MODES)}")
        if self.skeleton not in SKELETONS:
            raise XmkdError(f"source option skeleton={self.skeleton!r} is not one of {SKELETONS}")
        if self.width <= 0 or self.height <= 0 or self.fps <= 0 or self.timeout_ms <= 0:
            raise XmkdError(
                "source options width, height, fps and timeout must be positive, got "
                f"{self.width}x{self.height} at {self.fps} fps, timeout {self.timeout_ms} ms"
            )


def intrinsics_from_sdk(intrinsic: Any, width: int, height: int) -> Intrinsics:
    """An ``OBCameraIntrinsic`` (fx, fy, cx, cy at its own width x height) as `Intrinsics` of a
    ``width`` x ``height`` stream (scaled when the stream's size differs)."""
    iw, ih = int(intrinsic.width) or width, int(intrinsic.height) or height
    sx, sy = width / iw, height / ih
    if float(intrinsic.fx) <= 0 or float(intrinsic.fy) <= 0:
        raise XmkdError(f"the Orbbec camera reported no colour intrinsics ({intrinsic!r})")
    return Intrinsics(
        width,
        height,
        float(intrinsic.fx) * sx,
        float(intrinsic.fy) * sy,
        float(intrinsic.cx) * sx,
        float(intrinsic.cy) * sy,
    )


def color_to_bgr(ob: Any, frame: Any) -> np.ndarray:
    """A colour frame's pixels as BGR uint8 (RGB, BGR and MJPG frames)."""
    width, height = int(frame.get_width()), int(frame.get_height())
    data = np.asarray(frame.get_data(), dtype=np.uint8).reshape(-1)
    fmt = frame.get_format()
    if fmt == ob.OBFormat.RGB:
        return np.ascontiguousarray(data.reshape(height, width, 3)[:, :, ::-1])
    if fmt == ob.OBFormat.BGR:
        return data.reshape(height, width, 3).copy()
    if fmt == ob.OBFormat.MJPG:
        import cv2

        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            raise XmkdError("an Orbbec MJPG colour frame could not be decoded")
        return image
    raise XmkdError(f"Orbbec colour format {fmt} is not supported; use RGB, BGR or MJPG")


def depth_to_mm(frame: Any) -> np.ndarray:
    """A depth frame as uint16 millimetres (its values times ``get_depth_scale()``)."""
    width, height = int(frame.get_width()), int(frame.get_height())
    depth = np.frombuffer(np.asarray(frame.get_data(), dtype=np.uint8), dtype=np.uint16)
    depth = depth[: width * height].reshape(height, width)
    scale = float(frame.get_depth_scale())
    if scale != 1.0:
        depth = np.clip(np.round(depth * scale), 0, 65535).astype(np.uint16)
    return depth.copy()


class OrbbecSource(Source):
    """One Orbbec device as a source of mirrored BGR + depth-aligned-to-colour frames with
    depth-lifted NTU bodies."""

    kind = "orbbec"

    def __init__(
        self,
        index: int = 0,
        camera: int = 1,
        config: OrbbecConfig | None = None,
        pose2d: Estimator2D | None = None,
        max_frames: int | None = None,
    ):
        """``pose2d``: the 2D estimator whose keypoints are lifted (``skeleton=lifted``; one
        per device, each runs on its device's estimator thread)."""
        super().__init__(camera=camera, max_frames=max_frames)
        self.index = int(index)
        self.config = config or OrbbecConfig()
        self.fps = float(self.config.fps)
        if self.config.skeleton == "lifted" and pose2d is None:
            raise XmkdError(
                "an Orbbec source with skeleton=lifted needs a 2D pose estimator "
                "(orbbec:N?skeleton=lifted&pose_model=FILE); skeleton=none records without"
            )
        self.pose2d = pose2d if self.config.skeleton == "lifted" else None
        self.serial: str | None = None
        self.name: str | None = None
        self.intrinsics: Intrinsics | None = None
        self._ob: Any = None
        self._pipeline: Any = None
        self._align: Any = None
        self._worker: EstimatorWorker | None = None
        self._ids = BodyIds()

    @property
    def description(self) -> str:
        serial = f" {self.serial}" if self.serial else ""
        skeleton = "no skeletons" if self.pose2d is None else f"{self.pose2d.name} lifted"
        c = self.config
        return (
            f"orbbec #{self.index}{serial} ({c.width}x{c.height}, {c.fps} fps, "
            f"align {c.align}, {c.sync}, {skeleton})"
        )

    @property
    def estimator_dropped(self) -> int:
        """Frames the estimator had no time for (they carry the previous estimate)."""
        return self._worker.dropped if self._worker is not None else 0

    def device_info(self) -> dict[str, Any]:
        info = super().device_info()
        k = self.intrinsics
        info.update(
            serial=self.serial,
            index=self.index,
            name=self.name,
            width=self.config.width,
            height=self.config.height,
            fps=self.config.fps,
            align=self.config.align,
            sync=self.config.sync,
            intrinsics=None if k is None else {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy},
            skeleton=self.config.skeleton,
        )
        return info

    def _fail(self, what: str, exc: BaseException) -> XmkdError:
        return XmkdError(
            f"Orbbec camera #{self.index} {what} ({exc.__class__.__name__}: {exc}); check the "
            "USB 3 connection, the udev rules, and that no other program uses it"
        )

    def _open(self) -> None:
        ob = self._ob = _pyorbbecsdk()
        context = _context(ob)
        devices = context.query_devices()
        count = int(devices.get_count())
        if self.index >= count:
            raise XmkdError(
                f"Orbbec camera #{self.index} is not connected ({count} device(s) found); "
                "check the USB 3 cable and, on Linux, the udev rules"
            )
        try:
            device = devices.get_device_by_index(self.index)
            info = device.get_device_info()
            self.serial, self.name = info.get_serial_number(), info.get_name()
            if self.config.sync != "standalone":
                sync = device.get_multi_device_sync_config()
                sync.mode = getattr(ob.OBMultiDeviceSyncMode, SYNC_MODES[self.config.sync])
                sync.depth_delay_us = int(self.config.depth_delay_usec)
                sync.color_delay_us = int(self.config.depth_delay_usec)
                sync.trigger_out_enable = self.config.sync == "primary"
                device.set_multi_device_sync_config(sync)
            pipeline = ob.Pipeline(device)
        except Exception as exc:  # OBError: the device vanished or is busy
            raise self._fail("could not be opened", exc) from exc
        config = ob.Config()
        color = self._profile(ob, pipeline, ob.OBSensorType.COLOR_SENSOR, "colour")
        depth = self._profile(ob, pipeline, ob.OBSensorType.DEPTH_SENSOR, "depth")
        config.enable_stream(color)
        config.enable_stream(depth)
        config.set_frame_aggregate_output_mode(ob.OBFrameAggregateOutputMode.FULL_FRAME_REQUIRE)
        if self.config.align == "hw":
            config.set_align_mode(ob.OBAlignMode.HW_MODE)
            self._align = None
        else:
            self._align = ob.AlignFilter(align_to_stream=ob.OBStreamType.COLOR_STREAM)
        try:
            pipeline.enable_frame_sync()
            pipeline.start(config)
        except Exception as exc:
            raise self._fail("did not start", exc) from exc
        self._pipeline = pipeline
        try:
            param = pipeline.get_camera_param()
            self.intrinsics = intrinsics_from_sdk(
                param.rgb_intrinsic, self.config.width, self.config.height
            )
        except Exception:
            pipeline.stop()
            self._pipeline = None
            raise
        if self.pose2d is not None:
            lifted = AlignedDepthLiftedEstimator(self.pose2d, self.intrinsics)
            self._worker = EstimatorWorker(lifted, self._ids)  # type: ignore[arg-type]

    def _profile(self, ob: Any, pipeline: Any, sensor: Any, what: str) -> Any:
        """The colour profile asked for (RGB), or the depth sensor's Y16 at the same rate."""
        c = self.config
        try:
            profiles = pipeline.get_stream_profile_list(sensor)
            if what == "colour":
                return profiles.get_video_stream_profile(c.width, c.height, ob.OBFormat.RGB, c.fps)
            return profiles.get_video_stream_profile(0, 0, ob.OBFormat.Y16, c.fps)
        except Exception as exc:
            size = f"{c.width}x{c.height} RGB " if what == "colour" else "Y16 "
            raise XmkdError(
                f"Orbbec camera #{self.index} has no {size}{what} stream at {c.fps} fps "
                f"({exc.__class__.__name__}: {exc}); choose another width, height or fps"
            ) from exc

    def _close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
        if self.pose2d is not None:
            self.pose2d.close()

    def _wait(self) -> Any:
        """The next frame set; one sentence when none came for ``timeout_ms`` (unplugged)."""
        waited = time.monotonic()
        while not self._stop:
            try:
                frames = self._pipeline.wait_for_frames(_POLL_MS)
            except Exception as exc:  # OBError: ERROR_DEVICE_DISCONNECTED and the like
                raise self._fail("stopped delivering frames", exc) from exc
            if frames is not None:
                return frames
            if (time.monotonic() - waited) * 1000 >= self.config.timeout_ms:
                raise XmkdError(
                    f"Orbbec camera #{self.index} delivered no frames for "
                    f"{self.config.timeout_ms} ms; it may have been unplugged, or, as a "
                    "secondary, it waits for its primary and the sync cable"
                )
        return None

    def _frames(self) -> Iterator[Frame]:
        ob = self._ob
        index = 0
        while True:
            frames = self._wait()
            if frames is None:  # stopped
                return
            if self._align is not None:
                aligned = self._align.process(frames)
                if aligned is None:
                    continue
                frames = aligned.as_frame_set()
            color_frame, depth_frame = frames.get_color_frame(), frames.get_depth_frame()
            if color_frame is None or depth_frame is None:
                continue  # an incomplete set (only before FULL_FRAME_REQUIRE takes effect)
            color = color_to_bgr(ob, color_frame)
            depth = depth_to_mm(depth_frame)
            yield self._frame(index, color, depth, int(color_frame.get_timestamp_us()))
            index += 1

    def _frame(self, index: int, color: np.ndarray, depth: np.ndarray, device_usec: int) -> Frame:
        host_nsec = host_clock_ns()
        bodies: list[Body] = []
        if self._worker is not None:
            self._worker.submit(index, RGBD(color, depth))  # type: ignore[arg-type]
            bodies = [_copy_body(b) for b in self._worker.latest()[1]]
        if self.config.mirror:  # NTU's videos and pixel coordinates are mirrored
            width = color.shape[1]
            color = np.ascontiguousarray(color[:, ::-1])
            depth = np.ascontiguousarray(depth[:, ::-1])
            for body in bodies:
                body.color_px[:, 0] = mirror_pixels(body.color_px[:, 0], width)
                body.depth_px[:, 0] = mirror_pixels(body.depth_px[:, 0], width)
        return Frame(
            index=index,
            color=color,
            depth=depth,
            bodies=bodies,
            device_usec=device_usec,
            host_nsec=host_nsec,
            camera=self.camera,
        )


def orbbec_sources(
    arg: str, options: dict[str, str], first_camera: int, **overrides: Any
) -> list[Source]:
    """Sources for ``orbbec[:0,1,...]``: camera ids count up from ``first_camera`` in the order
    given; with several devices the first is the sync primary and the others secondaries
    (unless ``sync`` says otherwise), secondaries first in the list (they must be started before
    the primary), and the SDK re-syncs their clocks with the host every minute."""
    try:
        indices = [int(i) for i in arg.split(",") if i.strip()] if arg else [0]
    except ValueError:
        raise XmkdError(f"orbbec:{arg}: devices are numbers (orbbec:0 or orbbec:0,1)") from None
    sync = options.pop("sync", None)
    base: dict[str, Any] = {
        "width": option_num(options, "width", 1280),
        "height": option_num(options, "height", 720),
        "fps": option_num(options, "fps", 30),
        "align": options.pop("align", "sw"),
        "skeleton": options.pop("skeleton", "lifted"),
        "mirror": option_bool(options, "mirror", True),
        "timeout_ms": option_num(options, "timeout", 2000),
    }
    lifted = str(base["skeleton"]).lower() == "lifted" and "pose2d" not in overrides
    spec = rtmpose_spec(options) if lifted else None  # a missing model: one sentence now
    sources: list[OrbbecSource] = []
    for k, index in enumerate(indices):
        if sync:
            mode = sync
        else:
            mode = "standalone" if len(indices) == 1 else ("primary" if k == 0 else "secondary")
        config = OrbbecConfig(
            sync=mode,
            depth_delay_usec=SECONDARY_DELAY_STEP_USEC * k if mode == "secondary" else 0,
            **base,
        )
        if spec is not None:  # one estimator per device: each runs on its device's worker
            overrides = {**overrides, "pose2d": spec.build()}
        sources.append(OrbbecSource(index, first_camera + k, config, **overrides))
    if len(indices) > 1:
        ob = _pyorbbecsdk()
        _context(ob).enable_multi_device_sync(CLOCK_SYNC_INTERVAL_MS)
    return sorted(sources, key=lambda s: s.config.sync == "primary")
