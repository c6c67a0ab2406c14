"""A fake of Orbbec's Python SDK v2 (``pyorbbecsdk``, from the ``pyorbbecsdk2`` wheel) for tests
without a camera, written from the SDK's documented API (its ``pyorbbecsdk.pyi`` stubs and
samples): the names, signatures and enum values xmkd uses, with Python objects behind them.

`install_fake_pyorbbecsdk` puts a module named ``pyorbbecsdk`` in ``sys.modules`` whose
``Context().query_devices()`` lists the `FakeOrbbecDevice` scenarios given. A device streams
RGB colour and Y16 depth at ``fps`` with device timestamps in microseconds (``gaps`` leaves
frames out, as a device that drops them), holds a scene of known depth (a background plane and
a nearer box where a person stands), reports pinhole colour intrinsics, and records what the
caller asked for (profiles, alignment mode, sync configuration) so tests can check it. Depth
frames straight from the sensor have the depth camera's own size; `AlignFilter` (or
``Config.set_align_mode(OBAlignMode.HW_MODE)``) gives depth in the colour camera's geometry.
``unplug_after`` makes the device vanish after that many frame sets (``wait_for_frames`` times
out and returns None from then on, as the SDK does).
"""

from __future__ import annotations

import enum
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class OBError(Exception):
    """The SDK's exception type (``pyorbbecsdk.OBError``)."""


class OBSensorType(enum.IntEnum):
    UNKNOWN_SENSOR = 0
    IR_SENSOR = 1
    COLOR_SENSOR = 2
    DEPTH_SENSOR = 3


class OBStreamType(enum.IntEnum):
    UNKNOWN_STREAM = -1
    VIDEO_STREAM = 0
    IR_STREAM = 1
    COLOR_STREAM = 2
    DEPTH_STREAM = 3


class OBFormat(enum.IntEnum):
    YUYV = 0
    MJPG = 5
    Y16 = 8
    RGB = 22
    BGR = 23
    UNKNOWN_FORMAT = 255


class OBAlignMode(enum.IntEnum):
    DISABLE = 0
    HW_MODE = 1
    SW_MODE = 2


class OBFrameAggregateOutputMode(enum.IntEnum):
    FULL_FRAME_REQUIRE = 0
    COLOR_FRAME_REQUIRE = 1
    ANY_SITUATION = 2
    DISABLE = 3


class OBMultiDeviceSyncMode(enum.IntEnum):
    FREE_RUN = 1
    STANDALONE = 2
    PRIMARY = 4
    SECONDARY = 8
    SECONDARY_SYNCED = 16
    SOFTWARE_TRIGGERING = 32
    HARDWARE_TRIGGERING = 64


@dataclass
class OBCameraIntrinsic:
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    width: int = 0
    height: int = 0


@dataclass
class OBCameraParam:
    rgb_intrinsic: OBCameraIntrinsic = field(default_factory=OBCameraIntrinsic)
    depth_intrinsic: OBCameraIntrinsic = field(default_factory=OBCameraIntrinsic)


@dataclass
class OBMultiDeviceSyncConfig:
    mode: OBMultiDeviceSyncMode = OBMultiDeviceSyncMode.STANDALONE
    color_delay_us: int = 0
    depth_delay_us: int = 0
    trigger_to_image_delay_us: int = 0
    trigger_out_enable: bool = False
    trigger_out_delay_us: int = 0
    frames_per_trigger: int = 1


# ---- the scenario of one device -----------------------------------------------------------------
@dataclass
class FakeOrbbecDevice:
    """One camera: its streams, its scene and what it was asked to do."""

    serial: str = "CL8F0000001"
    name: str = "Femto Bolt"
    width: int = 64  # colour
    height: int = 48
    depth_width: int = 32  # the depth camera's own size (unaligned depth)
    depth_height: int = 24
    fps: int = 30
    frames: int = 10
    #: frame numbers the device never delivers (dropped on the device or USB side)
    gaps: tuple[int, ...] = ()
    first_usec: int = 1_000_000
    #: depth units per millimetre reported by ``get_depth_scale`` (values are mm / scale)
    depth_scale: float = 1.0
    background_mm: int = 3000
    person_mm: int = 1500
    #: the person's box in the colour image (u0, v0, u1, v1), where depth is ``person_mm``
    person_box: tuple[int, int, int, int] = (20, 8, 44, 44)
    fx: float = 50.0
    fy: float = 50.0
    cx: float = 31.5
    cy: float = 23.5
    color_formats: tuple[OBFormat, ...] = (OBFormat.RGB,)
    unplug_after: int | None = None
    # what the caller did
    sync_config: OBMultiDeviceSyncConfig = field(default_factory=OBMultiDeviceSyncConfig)
    started: bool = False
    stopped: bool = False
    config: Any = None
    frame_sync: bool = False

    def color_image(self, n: int) -> np.ndarray:
        """Frame ``n``'s RGB pixels: a left-to-right ramp in red (to check orientation and
        channel order) and the frame number in green."""
        rgb = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        rgb[:, :, 0] = np.linspace(0, 255, self.width, dtype=np.uint8)[None, :]
        rgb[:, :, 1] = n % 256
        return rgb

    def aligned_depth_mm(self) -> np.ndarray:
        """The scene's depth in the colour camera's geometry (what alignment gives)."""
        depth = np.full((self.height, self.width), self.background_mm, dtype=np.uint16)
        u0, v0, u1, v1 = self.person_box
        depth[v0:v1, u0:u1] = self.person_mm
        return depth

    def raw_depth_mm(self) -> np.ndarray:
        """The depth camera's own image (a different size: not usable with colour pixels)."""
        return np.full((self.depth_height, self.depth_width), self.background_mm, np.uint16)


# ---- frames -------------------------------------------------------------------------------------
class Frame:
    def __init__(self, data: np.ndarray, fmt: OBFormat, timestamp_us: int, index: int):
        self._data = np.ascontiguousarray(data)
        self._format = fmt
        self._timestamp_us = timestamp_us
        self._index = index

    def get_data(self) -> np.ndarray:
        return self._data.view(np.uint8).reshape(-1)  # the SDK returns a flat uint8 array

    def get_format(self) -> OBFormat:
        return self._format

    def get_timestamp_us(self) -> int:
        return self._timestamp_us

    def get_timestamp(self) -> int:
        return self._timestamp_us // 1000

    def get_system_timestamp_us(self) -> int:
        return 0

    def get_index(self) -> int:
        return self._index


class VideoFrame(Frame):
    """``size`` (width, height) for compressed payloads (MJPG), whose array is flat."""

    def __init__(
        self,
        data: np.ndarray,
        fmt: OBFormat,
        timestamp_us: int,
        index: int,
        size: tuple[int, int] | None = None,
    ):
        super().__init__(data, fmt, timestamp_us, index)
        self._width, self._height = size if size is not None else data.shape[1::-1]

    def get_width(self) -> int:
        return self._width

    def get_height(self) -> int:
        return self._height


class ColorFrame(VideoFrame):
    pass


class DepthFrame(VideoFrame):
    def __init__(self, data: np.ndarray, timestamp_us: int, index: int, scale: float):
        super().__init__(data, OBFormat.Y16, timestamp_us, index)
        self._scale = scale

    def get_depth_scale(self) -> float:
        return self._scale


class FrameSet(Frame):
    def __init__(self, color: ColorFrame | None, depth: DepthFrame | None, aligned: bool):
        self._color, self._depth = color, depth
        self.aligned = aligned

    def get_color_frame(self) -> ColorFrame | None:
        return self._color

    def get_depth_frame(self) -> DepthFrame | None:
        return self._depth

    def as_frame_set(self) -> FrameSet:
        return self


# ---- filters ------------------------------------------------------------------------------------
class AlignFilter:
    """Software depth-to-colour alignment: the fake's depth becomes the scene's depth in the
    colour camera's geometry."""

    instances: list[AlignFilter] = []

    def __init__(self, align_to_stream: OBStreamType):
        self.align_to_stream = align_to_stream
        self.processed = 0
        AlignFilter.instances.append(self)

    def get_align_to_stream_type(self) -> OBStreamType:
        return self.align_to_stream

    def process(self, frames: FrameSet) -> FrameSet | None:
        if self.align_to_stream != OBStreamType.COLOR_STREAM:
            return frames
        self.processed += 1
        depth = frames.get_depth_frame()
        device = frames._device  # type: ignore[attr-defined]
        aligned = DepthFrame(
            _scaled(device.aligned_depth_mm(), device.depth_scale),
            depth.get_timestamp_us(),
            depth.get_index(),
            device.depth_scale,
        )
        return FrameSet(frames.get_color_frame(), aligned, aligned=True)


def _scaled(depth_mm: np.ndarray, scale: float) -> np.ndarray:
    return np.round(depth_mm / scale).astype(np.uint16)


# ---- profiles, config, pipeline -----------------------------------------------------------------
@dataclass
class VideoStreamProfile:
    width: int
    height: int
    format: OBFormat
    fps: int
    sensor: OBSensorType

    def get_width(self) -> int:
        return self.width

    def get_height(self) -> int:
        return self.height

    def get_format(self) -> OBFormat:
        return self.format

    def get_fps(self) -> int:
        return self.fps

    def get_intrinsic(self) -> OBCameraIntrinsic:
        raise OBError("not used by xmkd")


class StreamProfileList:
    def __init__(self, profiles: list[VideoStreamProfile]):
        self._profiles = profiles

    def get_count(self) -> int:
        return len(self._profiles)

    def get_video_stream_profile(
        self, width: int = 0, height: int = 0, format: OBFormat = OBFormat.UNKNOWN_FORMAT, fps=0
    ) -> VideoStreamProfile:
        """The first profile matching every non-zero/non-unknown field (the SDK's rule);
        OBError when none does."""
        for p in self._profiles:
            if (
                (not width or p.width == width)
                and (not height or p.height == height)
                and (format == OBFormat.UNKNOWN_FORMAT or p.format == format)
                and (not fps or p.fps == fps)
            ):
                return p
        raise OBError(f"Invalid input, No matched video stream profile found! {width}x{height}")

    def get_default_video_stream_profile(self) -> VideoStreamProfile:
        return self._profiles[0]


class Config:
    def __init__(self) -> None:
        self.streams: list[VideoStreamProfile] = []
        self.align_mode = OBAlignMode.DISABLE
        self.aggregate = OBFrameAggregateOutputMode.ANY_SITUATION

    def enable_stream(self, profile: VideoStreamProfile) -> None:
        self.streams.append(profile)

    def set_align_mode(self, mode: OBAlignMode) -> None:
        self.align_mode = mode

    def set_frame_aggregate_output_mode(self, mode: OBFrameAggregateOutputMode) -> None:
        self.aggregate = mode


class Pipeline:
    def __init__(self, device: Device | None = None):
        if device is None:
            raise OBError("xmkd always passes the device")
        self._device = device.scenario
        self._n = 0  # frame number on the device's clock
        self._delivered = 0

    def get_device(self) -> Device:
        return Device(self._device)

    def get_stream_profile_list(self, sensor: OBSensorType) -> StreamProfileList:
        d = self._device
        if sensor == OBSensorType.COLOR_SENSOR:
            return StreamProfileList(
                [VideoStreamProfile(d.width, d.height, f, d.fps, sensor) for f in d.color_formats]
            )
        if sensor == OBSensorType.DEPTH_SENSOR:
            return StreamProfileList(
                [VideoStreamProfile(d.depth_width, d.depth_height, OBFormat.Y16, d.fps, sensor)]
            )
        raise OBError(f"no sensor {sensor!r}")

    def enable_frame_sync(self) -> None:
        self._device.frame_sync = True

    def start(self, config: Config) -> None:
        if not self._device.connected:  # type: ignore[attr-defined]
            raise OBError("Device is disconnected")
        self._device.config = config
        self._device.started = True

    def stop(self) -> None:
        self._device.stopped = True

    def get_camera_param(self) -> OBCameraParam:
        d = self._device
        rgb = OBCameraIntrinsic(d.fx, d.fy, d.cx, d.cy, d.width, d.height)
        depth = OBCameraIntrinsic(
            d.fx / 2, d.fy / 2, d.cx / 2, d.cy / 2, d.depth_width, d.depth_height
        )
        return OBCameraParam(rgb_intrinsic=rgb, depth_intrinsic=depth)

    def wait_for_frames(self, timeout_ms: int) -> FrameSet | None:
        d = self._device
        if d.unplug_after is not None and self._delivered >= d.unplug_after:
            d.connected = False  # type: ignore[attr-defined]
            return None  # the SDK times out once the device is gone
        while self._n in d.gaps:
            self._n += 1
        if self._n >= d.frames + len(d.gaps):
            return None  # nothing more (a real device would keep streaming)
        n = self._n
        self._n += 1
        self._delivered += 1
        usec = d.first_usec + int(round(n * 1e6 / d.fps))
        fmt = d.config.streams[0].format
        rgb = d.color_image(n)
        if fmt == OBFormat.RGB:
            color = ColorFrame(rgb, fmt, usec, n)
        elif fmt == OBFormat.BGR:
            color = ColorFrame(rgb[:, :, ::-1], fmt, usec, n)
        else:
            import cv2

            ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
            assert ok
            color = ColorFrame(jpeg.reshape(-1), fmt, usec, n, (d.width, d.height))
        hw = d.config.align_mode == OBAlignMode.HW_MODE
        depth_mm = d.aligned_depth_mm() if hw else d.raw_depth_mm()
        depth = DepthFrame(_scaled(depth_mm, d.depth_scale), usec, n, d.depth_scale)
        frames = FrameSet(color, depth, aligned=hw)
        frames._device = d  # type: ignore[attr-defined]  # what AlignFilter reads the scene from
        return frames


# ---- devices and the context --------------------------------------------------------------------
class DeviceInfo:
    def __init__(self, scenario: FakeOrbbecDevice):
        self._d = scenario

    def get_serial_number(self) -> str:
        return self._d.serial

    def get_name(self) -> str:
        return self._d.name


class Device:
    def __init__(self, scenario: FakeOrbbecDevice):
        self.scenario = scenario

    def get_device_info(self) -> DeviceInfo:
        return DeviceInfo(self.scenario)

    def get_multi_device_sync_config(self) -> OBMultiDeviceSyncConfig:
        c = self.scenario.sync_config
        return OBMultiDeviceSyncConfig(**c.__dict__)

    def set_multi_device_sync_config(self, config: OBMultiDeviceSyncConfig) -> None:
        self.scenario.sync_config = config


class DeviceList:
    def __init__(self, scenarios: list[FakeOrbbecDevice]):
        self._devices = [d for d in scenarios if getattr(d, "connected", True)]

    def get_count(self) -> int:
        return len(self._devices)

    def get_device_by_index(self, index: int) -> Device:
        if not 0 <= index < len(self._devices):
            raise OBError(f"Invalid index {index}")
        return Device(self._devices[index])

    def get_device_serial_number_by_index(self, index: int) -> str:
        return self._devices[index].serial

    def get_device_name_by_index(self, index: int) -> str:
        return self._devices[index].name


def install_fake_pyorbbecsdk(monkeypatch: Any, devices: list[FakeOrbbecDevice]) -> Any:
    """A fake ``pyorbbecsdk`` module seeing ``devices``, installed in ``sys.modules`` for the
    test (``monkeypatch`` undoes it). ``module.contexts`` lists the contexts created and
    ``module.sync_intervals`` what ``enable_multi_device_sync`` was called with."""
    module = types.ModuleType("pyorbbecsdk")
    module.contexts = []  # type: ignore[attr-defined]
    module.sync_intervals = []  # type: ignore[attr-defined]
    for scenario in devices:
        scenario.connected = True  # type: ignore[attr-defined]

    class Context:
        def __init__(self) -> None:
            module.contexts.append(self)  # type: ignore[attr-defined]

        def query_devices(self) -> DeviceList:
            return DeviceList(devices)

        def enable_multi_device_sync(self, repeat_interval_ms: int) -> None:
            module.sync_intervals.append(repeat_interval_ms)  # type: ignore[attr-defined]

    AlignFilter.instances = []
    for name, value in {
        "Context": Context,
        "Pipeline": Pipeline,
        "Config": Config,
        "AlignFilter": AlignFilter,
        "OBError": OBError,
        "OBSensorType": OBSensorType,
        "OBStreamType": OBStreamType,
        "OBFormat": OBFormat,
        "OBAlignMode": OBAlignMode,
        "OBFrameAggregateOutputMode": OBFrameAggregateOutputMode,
        "OBMultiDeviceSyncMode": OBMultiDeviceSyncMode,
        "OBMultiDeviceSyncConfig": OBMultiDeviceSyncConfig,
        "get_version": lambda: "2.0.0-fake",
    }.items():
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", module)
    return module
