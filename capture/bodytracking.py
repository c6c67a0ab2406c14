"""Azure Kinect Body Tracking (k4abt) through ctypes, loaded at run time.

Released pyk4a does not wrap k4abt and the SDK has no PyPI package, so this module binds the C
API directly (``k4abt_tracker_create``, ``k4abt_tracker_enqueue_capture``,
``k4abt_tracker_pop_result``, ``k4abt_frame_get_num_bodies``, ``k4abt_frame_get_body_id``,
``k4abt_frame_get_body_skeleton``) and converts each body's 32 joints to an NTU-25 `Body`
(metres, NTU axes, mirrored colour/depth pixels from the calibration, confidence -> tracking
state). A missing library raises one `XmkdError` sentence; nothing here ever exits the process.

The tracker configuration struct has the Body Tracking SDK 1.1 layout (``processing_mode``,
``gpu_device_id``, ``model_path``; 1.0 had a ``cpu_only_mode`` flag in its place), so an SDK
older than 1.1 is refused where its version can be read (the Linux soname ``libk4abt.so.1.0``,
the Windows DLL's file version). The processing mode is chosen per source with ``?bt=MODE``
(``kinect:0?bt=cpu``, ``mkv:FILE.mkv?bt=cpu``).

Captures come either from pyk4a (its capture capsule holds a ``k4a_capture_t*``) or, for MKV
playback without a device, are assembled from depth + IR arrays with libk4a's image API.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capture.calibration import Calibration
from capture.frames import Body
from xmkd.errors import XmkdError
from xmkd.skeleton import (
    AZURE_CONFIDENCE_TO_NTU_TRACKING,
    AZURE_TO_NTU,
    NUM_AZURE_JOINTS,
    azure_to_ntu_orientations,
    azure_to_ntu_positions,
)

K4A_RESULT_SUCCEEDED = 0
K4A_WAIT_RESULT_SUCCEEDED = 0
K4A_WAIT_RESULT_TIMEOUT = 2
K4A_WAIT_INFINITE = -1
K4A_IMAGE_FORMAT_DEPTH16 = 4
K4A_IMAGE_FORMAT_IR16 = 5
DEPTH_MODE_IDS = {"NFOV_2X2BINNED": 1, "NFOV_UNBINNED": 2, "WFOV_2X2BINNED": 3, "WFOV_UNBINNED": 4}
COLOR_RESOLUTION_IDS = {"720P": 1, "1080P": 2, "1440P": 3, "1536P": 4, "2160P": 5, "3072P": 6}
PROCESSING_MODES = {"gpu": 0, "cpu": 1, "cuda": 2, "tensorrt": 3, "directml": 4}
SENSOR_ORIENTATIONS = {"default": 0, "clockwise90": 1, "counterclockwise90": 2, "flip180": 3}
#: generous: sizeof(k4a_calibration_t) is about 1 KiB; the tracker only reads it
CALIBRATION_BUFFER_BYTES = 4096

#: the tracker configuration struct below is this SDK version's layout (1.1.2 is the last release)
MIN_SDK_VERSION = (1, 1)
SDK_HINT = (
    "install the Azure Kinect Body Tracking SDK >= 1.1 (libk4abt, with libk4a from the Sensor "
    "SDK) or point XMKD_K4ABT_LIB at libk4abt.so / k4abt.dll"
)
#: what to try when the GPU tracker cannot start: the per-source option, not a CLI flag
CPU_HINT = "use CPU tracking with the source option ?bt=cpu (e.g. kinect:0?bt=cpu, mkv:FILE?bt=cpu)"


class k4a_float3_t(ctypes.Structure):  # noqa: N801 - the C names
    _fields_ = [("x", ctypes.c_float), ("y", ctypes.c_float), ("z", ctypes.c_float)]


class k4a_quaternion_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("w", ctypes.c_float),
        ("x", ctypes.c_float),
        ("y", ctypes.c_float),
        ("z", ctypes.c_float),
    ]


class k4abt_joint_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("position", k4a_float3_t),  # millimetres, depth camera space
        ("orientation", k4a_quaternion_t),  # normalised, wxyz
        ("confidence_level", ctypes.c_int),  # k4abt_joint_confidence_level_t
    ]


class k4abt_skeleton_t(ctypes.Structure):  # noqa: N801
    _fields_ = [("joints", k4abt_joint_t * NUM_AZURE_JOINTS)]


class k4abt_tracker_configuration_t(ctypes.Structure):  # noqa: N801
    # Body Tracking SDK 1.1 layout (k4abttypes.h); see MIN_SDK_VERSION
    _fields_ = [
        ("sensor_orientation", ctypes.c_int),
        ("processing_mode", ctypes.c_int),
        ("gpu_device_id", ctypes.c_int32),
        ("model_path", ctypes.c_char_p),
    ]


@dataclass
class TrackerConfig:
    """k4abt tracker settings; the defaults are K4ABT_TRACKER_CONFIG_DEFAULT (GPU, device 0)."""

    sensor_orientation: str = "default"
    processing_mode: str = "gpu"
    gpu_device_id: int = 0
    model_path: str | None = None  # None: the SDK's default (full) model
    timeout_ms: int = K4A_WAIT_INFINITE

    def __post_init__(self) -> None:
        self.processing_mode = choose(
            self.processing_mode, PROCESSING_MODES, "the body tracking option bt"
        )
        self.sensor_orientation = choose(
            self.sensor_orientation, SENSOR_ORIENTATIONS, "the sensor orientation"
        )


def choose(value: str, choices: dict[str, int], what: str) -> str:
    """``value`` (any case) when it is a key of ``choices``, else one sentence listing them."""
    key = str(value).strip().lower()
    if key not in choices:
        raise XmkdError(f"{what}={value!r} is not one of {', '.join(choices)}")
    return key


def require_tracking_depth(depth_mode: str) -> None:
    """Body tracking reads depth + IR images: refuse depth modes without depth in one sentence."""
    if depth_mode.upper() not in DEPTH_MODE_IDS:
        raise XmkdError(
            f"body tracking needs depth images, which depth mode {depth_mode!r} does not give: "
            f"choose one of {', '.join(DEPTH_MODE_IDS)} or turn skeletons off with bodies=0"
        )


def sdk_version_of(library: Any) -> tuple[int, int] | None:
    """(major, minor) of a loaded libk4abt when its file tells it, else None.

    Linux packages name the library by version (``libk4abt.so.1.1`` from libk4abt1.1, a path may
    be a symlink to ``libk4abt.so.1.1.2``); Windows DLLs carry a file version resource."""
    name = getattr(library, "_name", None)
    if not isinstance(name, str):
        return None  # not a CDLL (tests pass fakes)
    names = [name]
    if os.path.exists(name):
        names.append(os.path.realpath(name))
    for candidate in names:
        match = re.search(r"k4abt\.so\.(\d+)\.(\d+)", os.path.basename(candidate))
        if match:
            return int(match.group(1)), int(match.group(2))
    if sys.platform.startswith("win"):
        return _windows_file_version(getattr(library, "_handle", None))
    return None


def _windows_file_version(handle: int | None) -> tuple[int, int] | None:
    """(major, minor) from the version resource of the loaded DLL ``handle``, or None."""
    if not handle:
        return None
    try:
        kernel32, version = ctypes.WinDLL("kernel32"), ctypes.WinDLL("version")  # type: ignore[attr-defined]
        path = ctypes.create_unicode_buffer(32768)
        if not kernel32.GetModuleFileNameW(ctypes.c_void_p(handle), path, len(path)):
            return None
        size = version.GetFileVersionInfoSizeW(path, None)
        data = ctypes.create_string_buffer(size)
        if not size or not version.GetFileVersionInfoW(path, 0, size, data):
            return None
        info, length = ctypes.c_void_p(), ctypes.c_uint()
        if not version.VerQueryValueW(data, "\\", ctypes.byref(info), ctypes.byref(length)):
            return None
        # VS_FIXEDFILEINFO: dwSignature, dwStrucVersion, dwFileVersionMS (major << 16 | minor)
        ms = ctypes.cast(info, ctypes.POINTER(ctypes.c_uint32))[2]
        return ms >> 16, ms & 0xFFFF
    except (AttributeError, OSError):
        return None


def require_sdk_version(library: Any) -> None:
    """Refuse a Body Tracking SDK older than 1.1, whose tracker configuration has another layout
    (passing it the 1.1 struct would misconfigure or crash the tracker)."""
    found = sdk_version_of(library)
    if found is not None and found < MIN_SDK_VERSION:
        raise XmkdError(
            f"{library._name} is Body Tracking SDK {found[0]}.{found[1]}, but xmkd passes the "
            f"tracker configuration of SDK >= {MIN_SDK_VERSION[0]}.{MIN_SDK_VERSION[1]}; "
            "install Body Tracking SDK 1.1 or newer (1.1.2 is the last release)"
        )


def skeleton_arrays(skeleton: k4abt_skeleton_t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (32, 3) mm, orientations (32, 4) wxyz, confidence (32,) int) of a skeleton."""
    raw = np.frombuffer(bytes(skeleton), dtype=np.dtype([("f", "<f4", 7), ("c", "<i4")]))
    return raw["f"][:, :3].astype(np.float64), raw["f"][:, 3:].astype(np.float64), raw["c"].copy()


def body_from_azure(
    body_id: int,
    positions_mm: np.ndarray,
    orientations: np.ndarray,
    confidence: np.ndarray,
    calibration: Calibration | None,
) -> Body:
    """One k4abt body (32 joints, mm, Azure axes) -> an NTU-25 `Body` (metres, NTU axes, NTU
    tracking states, colour/depth pixels mirrored like NTU's when a calibration is given)."""
    positions_mm = np.asarray(positions_mm, dtype=np.float64).reshape(NUM_AZURE_JOINTS, 3)
    conf = np.clip(np.asarray(confidence, dtype=np.int64).reshape(NUM_AZURE_JOINTS), 0, 3)
    tracking = np.asarray(AZURE_CONFIDENCE_TO_NTU_TRACKING)[conf[list(AZURE_TO_NTU)]]
    color_px = depth_px = None
    if calibration is not None:
        color_px, depth_px = calibration.to_ntu_pixels(positions_mm[list(AZURE_TO_NTU)])
    return Body(
        id=body_id,
        joints=azure_to_ntu_positions(positions_mm),
        color_px=color_px,
        depth_px=depth_px,
        tracking=tracking,
        orientation=azure_to_ntu_orientations(orientations),
    )


def _candidate_paths(env: str, names: list[str]) -> list[str]:
    out = []
    if os.environ.get(env):
        out.append(os.environ[env])
    for name in names:
        found = ctypes.util.find_library(name)
        if found:
            out.append(found)
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("ProgramFiles", r"C:\Program Files"))
        out.append(str(base / "Azure Kinect Body Tracking SDK" / "sdk" / "windows-desktop" / "amd64"
                       / "release" / "bin" / "k4abt.dll"))  # fmt: skip
        out.append(str(base / "Azure Kinect SDK v1.4.1" / "sdk" / "windows-desktop" / "amd64"
                       / "release" / "bin" / "k4a.dll"))  # fmt: skip
    else:
        out += [f"lib{n}.so" for n in names] + [f"lib{n}.so.1" for n in names]
    return out


def load_library(env: str, names: list[str], what: str) -> ctypes.CDLL:
    """Load a native library by env override, then the loader's search path; XmkdError if absent."""
    last_error = "not on the library path"
    for path in dict.fromkeys(_candidate_paths(env, names)):
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            last_error = str(exc)
    raise XmkdError(f"body tracking needs {what}, which was not found ({last_error}); {SDK_HINT}")


def _declare(k4a: Any, k4abt: Any) -> None:
    """Argument/return types of the functions used (skipped for fakes that are not CDLLs)."""
    c_void_p, c_int, c_uint32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
    signatures: list[tuple[Any, str, list[Any], Any]] = [
        (k4a, "k4a_calibration_get_from_raw",
         [ctypes.c_char_p, ctypes.c_size_t, c_int, c_int, c_void_p], c_int),
        (k4a, "k4a_capture_create", [ctypes.POINTER(c_void_p)], c_int),
        (k4a, "k4a_capture_release", [c_void_p], None),
        (k4a, "k4a_image_create", [c_int, c_int, c_int, c_int, ctypes.POINTER(c_void_p)], c_int),
        (k4a, "k4a_image_get_buffer", [c_void_p], ctypes.POINTER(ctypes.c_uint8)),
        (k4a, "k4a_image_set_device_timestamp_usec", [c_void_p, ctypes.c_uint64], None),
        (k4a, "k4a_image_release", [c_void_p], None),
        (k4a, "k4a_capture_set_depth_image", [c_void_p, c_void_p], None),
        (k4a, "k4a_capture_set_ir_image", [c_void_p, c_void_p], None),
        (k4abt, "k4abt_tracker_create",
         [c_void_p, k4abt_tracker_configuration_t, ctypes.POINTER(c_void_p)], c_int),
        (k4abt, "k4abt_tracker_enqueue_capture", [c_void_p, c_void_p, ctypes.c_int32], c_int),
        (k4abt, "k4abt_tracker_pop_result",
         [c_void_p, ctypes.POINTER(c_void_p), ctypes.c_int32], c_int),
        (k4abt, "k4abt_frame_get_num_bodies", [c_void_p], c_uint32),
        (k4abt, "k4abt_frame_get_body_id", [c_void_p, c_uint32], c_uint32),
        (k4abt, "k4abt_frame_get_body_skeleton",
         [c_void_p, c_uint32, ctypes.POINTER(k4abt_skeleton_t)], c_int),
        (k4abt, "k4abt_frame_release", [c_void_p], None),
        (k4abt, "k4abt_tracker_shutdown", [c_void_p], None),
        (k4abt, "k4abt_tracker_destroy", [c_void_p], None),
    ]  # fmt: skip
    for lib, name, argtypes, restype in signatures:
        if isinstance(lib, ctypes.CDLL):
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = restype


def capsule_pointer(capsule: object, name: bytes = b"pyk4a capture handle") -> int:
    """The ``k4a_capture_t`` handle inside a pyk4a capture capsule (which holds a pointer to it)."""
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    pointer = get(capsule, name)
    return ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))[0]


class BodyTracker:
    """A k4abt tracker for one device (one calibration); `track_*` return NTU `Body` lists.

    ``libraries`` replaces the native (k4a, k4abt) pair (tests pass fakes with the same C
    functions); otherwise both are found at run time.
    """

    def __init__(
        self,
        calibration_json: str,
        depth_mode: str = "NFOV_UNBINNED",
        color_resolution: str = "720P",
        config: TrackerConfig | None = None,
        libraries: tuple[Any, Any] | None = None,
    ):
        self.config = config or TrackerConfig()
        require_tracking_depth(depth_mode)
        self.calibration = Calibration.from_json(calibration_json, depth_mode, color_resolution)
        if libraries is None:
            k4a = load_library("XMKD_K4A_LIB", ["k4a"], "the Azure Kinect Sensor SDK (libk4a)")
            k4abt = load_library("XMKD_K4ABT_LIB", ["k4abt"], "the Body Tracking SDK (libk4abt)")
            require_sdk_version(k4abt)
        else:
            k4a, k4abt = libraries
        _declare(k4a, k4abt)
        self._k4a, self._k4abt = k4a, k4abt
        self._calib_buf = ctypes.create_string_buffer(CALIBRATION_BUFFER_BYTES)
        raw = calibration_json.encode() if isinstance(calibration_json, str) else calibration_json
        raw_buf = ctypes.create_string_buffer(raw)
        if (
            k4a.k4a_calibration_get_from_raw(
                raw_buf,
                len(raw) + 1,
                DEPTH_MODE_IDS[self.calibration.depth_mode],
                COLOR_RESOLUTION_IDS[self.calibration.color_resolution],
                ctypes.cast(self._calib_buf, ctypes.c_void_p),
            )
            != K4A_RESULT_SUCCEEDED
        ):
            raise XmkdError("libk4a could not read the device calibration for body tracking")
        cfg = k4abt_tracker_configuration_t(
            SENSOR_ORIENTATIONS[self.config.sensor_orientation],
            PROCESSING_MODES[self.config.processing_mode],
            self.config.gpu_device_id,
            self.config.model_path.encode() if self.config.model_path else None,
        )
        self._tracker = ctypes.c_void_p()
        result = k4abt.k4abt_tracker_create(
            ctypes.cast(self._calib_buf, ctypes.c_void_p), cfg, ctypes.byref(self._tracker)
        )
        if result != K4A_RESULT_SUCCEEDED:
            raise XmkdError(
                "the Body Tracking SDK could not create a tracker (processing mode "
                f"{self.config.processing_mode!r}): check the GPU driver and CUDA, or {CPU_HINT}"
            )

    # ---- tracking -------------------------------------------------------------------------
    def track_handle(self, capture_handle: int | ctypes.c_void_p) -> list[Body]:
        """Enqueue one k4a capture handle and pop its body frame (synchronously)."""
        if not self.enqueue(capture_handle, self.config.timeout_ms):
            raise XmkdError("the body tracker did not accept a capture (queue full or failed)")
        bodies = self.pop(self.config.timeout_ms)
        if bodies is None:
            raise XmkdError("the body tracker returned no result for a capture")
        return bodies

    def enqueue(self, capture_handle: int | ctypes.c_void_p, timeout_ms: int = 0) -> bool:
        """Hand a capture to the tracker; False when its queue is full (retry after a pop).
        k4abt keeps its own reference to the capture, so the caller may release it."""
        handle = ctypes.c_void_p(capture_handle if isinstance(capture_handle, int) else
                                 capture_handle.value)  # fmt: skip
        result = self._k4abt.k4abt_tracker_enqueue_capture(self._tracker, handle, timeout_ms)
        if result == K4A_WAIT_RESULT_TIMEOUT:
            return False
        if result != K4A_WAIT_RESULT_SUCCEEDED:
            raise XmkdError("the body tracker failed to accept a capture")
        return True

    def pop(self, timeout_ms: int = 0) -> list[Body] | None:
        """Bodies of the oldest tracked capture (results come out in enqueue order), or None
        when none is ready within ``timeout_ms``."""
        frame = ctypes.c_void_p()
        result = self._k4abt.k4abt_tracker_pop_result(
            self._tracker, ctypes.byref(frame), timeout_ms
        )
        if result == K4A_WAIT_RESULT_TIMEOUT:
            return None
        if result != K4A_WAIT_RESULT_SUCCEEDED:
            raise XmkdError("the body tracker failed while tracking")
        try:
            return self._bodies(frame)
        finally:
            self._k4abt.k4abt_frame_release(frame)

    def enqueue_pyk4a(self, capture: Any, timeout_ms: int = 0) -> bool:
        """`enqueue` for a pyk4a ``PyK4ACapture``."""
        return self.enqueue(capsule_pointer(capture._capture_handle), timeout_ms)

    def _bodies(self, frame: ctypes.c_void_p) -> list[Body]:
        bodies = []
        for i in range(int(self._k4abt.k4abt_frame_get_num_bodies(frame))):
            skeleton = k4abt_skeleton_t()
            if self._k4abt.k4abt_frame_get_body_skeleton(frame, i, ctypes.byref(skeleton)) != 0:
                continue
            body_id = int(self._k4abt.k4abt_frame_get_body_id(frame, i))
            pos, orient, conf = skeleton_arrays(skeleton)
            bodies.append(body_from_azure(body_id, pos, orient, conf, self.calibration))
        return bodies

    def track_pyk4a(self, capture: Any) -> list[Body]:
        """Track a pyk4a ``PyK4ACapture`` (its capsule holds the k4a capture handle)."""
        return self.track_handle(capsule_pointer(capture._capture_handle))

    def track_images(self, depth: np.ndarray, ir: np.ndarray, device_usec: int) -> list[Body]:
        """Track depth + IR images (uint16, as recorded in an MKV): builds a k4a capture."""
        k4a = self._k4a
        capture = ctypes.c_void_p()
        if k4a.k4a_capture_create(ctypes.byref(capture)) != K4A_RESULT_SUCCEEDED:
            raise XmkdError("libk4a could not create a capture for body tracking")
        images: list[ctypes.c_void_p] = []
        try:
            for fmt, arr, attach in (
                (K4A_IMAGE_FORMAT_DEPTH16, depth, k4a.k4a_capture_set_depth_image),
                (K4A_IMAGE_FORMAT_IR16, ir, k4a.k4a_capture_set_ir_image),
            ):
                arr = np.ascontiguousarray(arr, dtype=np.uint16)
                h, w = arr.shape
                image = ctypes.c_void_p()
                if k4a.k4a_image_create(fmt, w, h, w * 2, ctypes.byref(image)) != 0:
                    raise XmkdError("libk4a could not allocate an image for body tracking")
                images.append(image)
                ctypes.memmove(k4a.k4a_image_get_buffer(image), arr.ctypes.data, arr.nbytes)
                k4a.k4a_image_set_device_timestamp_usec(image, int(device_usec))
                attach(capture, image)
            return self.track_handle(capture)
        finally:
            for image in images:
                k4a.k4a_image_release(image)
            k4a.k4a_capture_release(capture)

    def close(self) -> None:
        if self._tracker:
            self._k4abt.k4abt_tracker_shutdown(self._tracker)
            self._k4abt.k4abt_tracker_destroy(self._tracker)
            self._tracker = ctypes.c_void_p()

    def __enter__(self) -> BodyTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def try_body_tracker(
    factory: Callable[[], BodyTracker], log: Callable[[str], None]
) -> BodyTracker | None:
    """A tracker, or None after logging once why skeletons are unavailable (file sources keep
    playing colour/depth without the SDK)."""
    try:
        return factory()
    except XmkdError as err:
        log(str(err))
        return None
