"""Fakes of the Azure Kinect layers for tests without a sensor, following pyk4a's own approach
(its tests replace the native ``k4a_module`` with Python fakes that produce frames):

* `install_fake_pyk4a` puts a fake ``pyk4a`` package in ``sys.modules``: enums, ``Config``,
  ``connected_device_count`` and ``PyK4A`` devices whose captures carry BGRA colour, depth, device
  timestamps (with optional gaps to simulate dropped frames) and a real PyCapsule named like
  pyk4a's capture handle.
* `FakeK4ALibs` stands in for the (libk4a, libk4abt) pair loaded through ctypes: same function
  names, same by-reference outputs (it writes into the ctypes objects the binding passes), and it
  reports a scripted set of bodies per capture.
"""

from __future__ import annotations

import ctypes
import enum
import sys
import types
from dataclasses import dataclass, field

import numpy as np

CAPSULE_NAME = b"pyk4a capture handle"


# ------------------------------------------------------------------------------------------
# pyk4a
class _ImageFormat(enum.IntEnum):
    COLOR_MJPG = 0
    COLOR_NV12 = 1
    COLOR_YUY2 = 2
    COLOR_BGRA32 = 3
    DEPTH16 = 4
    IR16 = 5


class _FPS(enum.IntEnum):
    FPS_5 = 0
    FPS_15 = 1
    FPS_30 = 2


class _DepthMode(enum.IntEnum):
    OFF = 0
    NFOV_2X2BINNED = 1
    NFOV_UNBINNED = 2
    WFOV_2X2BINNED = 3
    WFOV_UNBINNED = 4
    PASSIVE_IR = 5


class _ColorResolution(enum.IntEnum):
    OFF = 0
    RES_720P = 1
    RES_1080P = 2
    RES_1440P = 3
    RES_1536P = 4
    RES_2160P = 5
    RES_3072P = 6


class _WiredSyncMode(enum.IntEnum):
    STANDALONE = 0
    MASTER = 1
    SUBORDINATE = 2


class K4AException(Exception):
    pass


class K4ATimeoutException(K4AException):
    pass


@dataclass
class _Config:
    color_resolution: int = _ColorResolution.RES_720P
    color_format: int = _ImageFormat.COLOR_BGRA32
    depth_mode: int = _DepthMode.NFOV_UNBINNED
    camera_fps: int = _FPS.FPS_30
    synchronized_images_only: bool = True
    depth_delay_off_color_usec: int = 0
    wired_sync_mode: int = _WiredSyncMode.STANDALONE
    subordinate_delay_off_master_usec: int = 0
    disable_streaming_indicator: bool = False


_RES = {1: (1280, 720), 2: (1920, 1080)}
_DEPTH = {1: (320, 288), 2: (640, 576), 3: (512, 512), 4: (1024, 1024)}
_PERIOD = {0: 200_000, 1: 66_666, 2: 33_333}


def make_capsule(value: int) -> object:
    """A real PyCapsule holding a pointer to a k4a_capture_t-like handle (as pyk4a's does)."""
    holder = ctypes.c_void_p(value)
    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule = new(ctypes.addressof(holder), CAPSULE_NAME, None)
    _KEEP.append(holder)  # the capsule does not own it; keep it alive for the test
    return capsule


_KEEP: list = []


class FakeCapture:
    def __init__(self, config: _Config, number: int, device_usec: int, handle: int):
        w, h = _RES[int(config.color_resolution)]
        dw, dh = _DEPTH[int(config.depth_mode)]
        color = np.zeros((h, w, 4), np.uint8)
        color[:, : w // 4, 2] = 255  # red band on the camera's left: mirrored, it moves right
        color[..., 3] = 255
        self.color = color
        self.depth = np.full((dh, dw), 1500 + number, np.uint16)
        self.depth[:, : dw // 4] = 700
        self.ir = np.full((dh, dw), 100, np.uint16)
        self.color_timestamp_usec = device_usec
        self.depth_timestamp_usec = device_usec
        self.color_system_timestamp_nsec = 1_000_000_000 + number * 33_333_000
        self._capture_handle = make_capsule(handle)


@dataclass
class FakeDeviceSpec:
    serial: str = "000123456789"
    frames: int = 10  # captures before the fake device stops delivering (timeout)
    gaps: dict[int, int] = field(default_factory=dict)  # capture index -> frames lost before it


class FakePyK4A:
    started: list = []  # (device_id, wired_sync_mode) in start order, across devices

    def __init__(self, config=None, device_id: int = 0, thread_safe: bool = True):
        self._config = config or _Config()
        self._device_id = device_id
        self.opened = False
        self.is_running = False
        self._n = 0
        self._t = 5_000_000
        self._spec: FakeDeviceSpec = _STATE["devices"][device_id]

    def open(self):
        self.opened = True

    def close(self):
        self.opened = False

    def start(self):
        self.opened = True
        self.is_running = True
        FakePyK4A.started.append((self._device_id, int(self._config.wired_sync_mode)))

    def stop(self):
        self.is_running = False
        self.opened = False

    @property
    def serial(self) -> str:
        return self._spec.serial

    @property
    def calibration_raw(self) -> str:
        return _STATE["calibration_raw"]

    def get_capture(self, timeout: int = -1) -> FakeCapture:
        if not self.is_running:
            raise K4AException("Device is not running")
        if self._n >= self._spec.frames:
            raise K4ATimeoutException()
        self._t += _PERIOD[int(self._config.camera_fps)] * (1 + self._spec.gaps.get(self._n, 0))
        capture = FakeCapture(self._config, self._n, self._t, handle=0x1000 + self._n)
        self._n += 1
        return capture


_STATE: dict = {"devices": [], "calibration_raw": "{}"}


def install_fake_pyk4a(
    monkeypatch, devices: list[FakeDeviceSpec], calibration_raw: str
) -> types.ModuleType:
    """Install a fake ``pyk4a`` module for this test (monkeypatch undoes it)."""
    module = types.ModuleType("pyk4a")
    module.ImageFormat = _ImageFormat
    module.FPS = _FPS
    module.DepthMode = _DepthMode
    module.ColorResolution = _ColorResolution
    module.WiredSyncMode = _WiredSyncMode
    module.Config = _Config
    module.PyK4A = FakePyK4A
    module.K4AException = K4AException
    module.K4ATimeoutException = K4ATimeoutException
    module.connected_device_count = lambda: len(_STATE["devices"])
    monkeypatch.setitem(_STATE, "devices", list(devices))
    monkeypatch.setitem(_STATE, "calibration_raw", calibration_raw)
    monkeypatch.setattr(FakePyK4A, "started", [])
    monkeypatch.setitem(sys.modules, "pyk4a", module)
    return module


# ------------------------------------------------------------------------------------------
# libk4a + libk4abt
def _out(ref):
    """The ctypes object behind ``ctypes.byref(obj)`` (what the C function writes into)."""
    return ref._obj


class FakeK4ALibs:
    """Both native libraries in one object: pass ``(libs, libs)`` as BodyTracker(libraries=...).

    ``bodies_per_capture(n)`` returns, for the n-th enqueued capture, a list of
    (body_id, positions (32, 3) mm, confidence (32,)) tuples."""

    def __init__(self, bodies_per_capture, capacity: int = 1000, latency: int = 0):
        self.bodies_per_capture = bodies_per_capture
        self.capacity = capacity  # the tracker's input queue: enqueue times out when full
        self.latency = latency  # a result is ready once this many later captures are queued
        self.enqueued: list[int] = []
        self.images: dict[int, dict] = {}
        self.calibration_calls: list[tuple] = []
        self.tracker_config = None
        self.released_frames = 0
        self.destroyed = False
        self._next = 0x5000
        self._frames: dict[int, list] = {}
        self._queue: list[int] = []

    def _handle(self) -> int:
        self._next += 16
        return self._next

    # libk4a
    def k4a_calibration_get_from_raw(self, raw, size, depth_mode, color_res, out):
        self.calibration_calls.append((raw.value, size, depth_mode, color_res))
        return 0

    def k4a_capture_create(self, ref):
        _out(ref).value = self._handle()
        return 0

    def k4a_image_create(self, fmt, w, h, stride, ref):
        handle = self._handle()
        buf = (ctypes.c_uint8 * (stride * h))()
        self.images[handle] = {"fmt": fmt, "w": w, "h": h, "buf": buf, "ts": None}
        _out(ref).value = handle
        return 0

    def k4a_image_get_buffer(self, image):
        return ctypes.cast(self.images[image.value]["buf"], ctypes.POINTER(ctypes.c_uint8))

    def k4a_image_set_device_timestamp_usec(self, image, ts):
        self.images[image.value]["ts"] = ts

    def k4a_capture_set_depth_image(self, capture, image):
        self.images[image.value]["capture"] = capture.value

    def k4a_capture_set_ir_image(self, capture, image):
        self.images[image.value]["capture"] = capture.value

    def k4a_image_release(self, image):
        pass

    def k4a_capture_release(self, capture):
        pass

    # libk4abt
    def k4abt_tracker_create(self, calibration, config, ref):
        self.tracker_config = (config.sensor_orientation, config.processing_mode,
                               config.gpu_device_id, config.model_path)  # fmt: skip
        _out(ref).value = 0x7700
        return 0

    def k4abt_tracker_enqueue_capture(self, tracker, capture, timeout):
        if len(self._queue) >= self.capacity:
            return 2  # K4A_WAIT_RESULT_TIMEOUT
        n = len(self.enqueued)
        self.enqueued.append(capture.value)
        frame = self._handle()
        self._frames[frame] = self.bodies_per_capture(n)
        self._queue.append(frame)
        return 0

    def k4abt_tracker_pop_result(self, tracker, ref, timeout):
        if not self._queue or (timeout == 0 and len(self._queue) <= self.latency):
            return 2  # timeout (a blocking pop waits for the GPU: the result comes)
        _out(ref).value = self._queue.pop(0)
        return 0

    def k4abt_frame_get_num_bodies(self, frame):
        return len(self._frames[frame.value])

    def k4abt_frame_get_body_id(self, frame, i):
        return self._frames[frame.value][i][0]

    def k4abt_frame_get_body_skeleton(self, frame, i, ref):
        _, positions, confidence = self._frames[frame.value][i]
        skeleton = _out(ref)
        for j in range(32):
            joint = skeleton.joints[j]
            joint.position.x, joint.position.y, joint.position.z = (float(v) for v in positions[j])
            joint.orientation.w, joint.orientation.x = 1.0, 0.0
            joint.orientation.y, joint.orientation.z = 0.0, 0.0
            joint.confidence_level = int(confidence[j])
        return 0

    def k4abt_frame_release(self, frame):
        self.released_frames += 1

    def k4abt_tracker_shutdown(self, tracker):
        pass

    def k4abt_tracker_destroy(self, tracker):
        self.destroyed = True


def standing_body(z_mm: float = 2000.0) -> np.ndarray:
    """32 Azure joints (mm, depth camera axes: +x right, +y down) of a person facing the camera:
    a vertical line of joints, the person's left side (index 5, shoulder left) at +x."""
    positions = np.zeros((32, 3))
    positions[:, 2] = z_mm
    positions[:, 1] = np.linspace(-800, 800, 32)  # head (negative y) ... feet
    positions[5] = (150.0, -400.0, z_mm)  # SHOULDER_LEFT: to the camera's right
    positions[12] = (-150.0, -400.0, z_mm)  # SHOULDER_RIGHT
    return positions
