"""Azure Kinect calibration without the SDK: parse the device's calibration JSON (the
``k4a_calibration`` format a device reports and an MKV carries as ``calibration.json``) and project
3D points to colour/depth pixels with the SDK's own Brown-Conrady model, in pure numpy.

This is what fills NTU's per-joint ``colorX colorY depthX depthY`` for Azure Kinect bodies: k4abt
reports joints in the depth camera's 3D space (mm); ``project`` maps them to pixels of the chosen
colour resolution / depth mode exactly as ``k4a_calibration_3d_to_2d`` does (mode-specific
intrinsics derived from the normalised raw ones, the depth-to-colour extrinsics from the JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmkd.errors import FormatError

#: Mode tables of k4a (binned calibration resolution, crop offset, output resolution): the raw
#: intrinsics are normalised to the full sensor; each mode scales and crops them.
DEPTH_MODES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "NFOV_2X2BINNED": ((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": ((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": ((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": ((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": ((1024, 1024), (0, 0), (1024, 1024)),
}
COLOR_RESOLUTIONS: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "720P": ((1280, 960), (0, 120), (1280, 720)),
    "1080P": ((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": ((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": ((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": ((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": ((4096, 3072), (0, 0), (4096, 3072)),
}


@dataclass(frozen=True)
class CameraModel:
    """Pixelised intrinsics of one camera in one mode (OpenCV convention: (0, 0) is the centre of
    the top-left pixel), Brown-Conrady distortion as k4a implements it, and the rigid transform
    from the depth camera's 3D space (mm) to this camera's."""

    width: int
    height: int
    cx: float
    cy: float
    fx: float
    fy: float
    k: tuple[float, float, float, float, float, float]
    p1: float
    p2: float
    codx: float
    cody: float
    metric_radius: float
    rotation: np.ndarray  # (3, 3): x_cam = R @ x_depth + t
    translation_mm: np.ndarray  # (3,)

    def project(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth-camera-space points (..., 3) in mm -> (pixels (..., 2), valid (...,) bool).

        Invalid points (behind the camera or outside the lens model's radius) get pixel (0, 0),
        as ``k4a_calibration_3d_to_2d`` reports them."""
        pts = np.asarray(points_mm, dtype=np.float64)
        cam = pts @ self.rotation.T + self.translation_mm
        z = cam[..., 2]
        valid = z > 0
        safe_z = np.where(valid, z, 1.0)
        xp = cam[..., 0] / safe_z - self.codx
        yp = cam[..., 1] / safe_z - self.cody
        rs = xp * xp + yp * yp
        if self.metric_radius > 0:  # the raw JSON stores 0 for the colour camera: no limit
            valid &= rs <= self.metric_radius**2
        k1, k2, k3, k4, k5, k6 = self.k
        a = 1 + k1 * rs + k2 * rs**2 + k3 * rs**3
        b = 1 + k4 * rs + k5 * rs**2 + k6 * rs**3
        d = a / np.where(b != 0, b, 1.0)
        xd = xp * d + (rs + 2 * xp * xp) * self.p2 + 2 * xp * yp * self.p1
        yd = yp * d + (rs + 2 * yp * yp) * self.p1 + 2 * xp * yp * self.p2
        u = (xd + self.codx) * self.fx + self.cx
        v = (yd + self.cody) * self.fy + self.cy
        uv = np.stack([u, v], axis=-1)
        uv[~valid] = 0.0
        return uv, valid


@dataclass(frozen=True)
class Calibration:
    """A device calibration: the raw JSON plus camera models for the selected modes."""

    raw: dict[str, Any]
    depth: CameraModel
    color: CameraModel
    depth_mode: str
    color_resolution: str

    @classmethod
    def from_json(
        cls,
        text: str | bytes | dict[str, Any],
        depth_mode: str = "NFOV_UNBINNED",
        color_resolution: str = "720P",
        source: str | Path = "calibration JSON",
    ) -> Calibration:
        """Parse the k4a calibration JSON for a depth mode and a colour resolution."""
        try:
            raw = text if isinstance(text, dict) else json.loads(text)
            cameras = raw["CalibrationInformation"]["Cameras"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(
                source, f"not an Azure Kinect calibration JSON ({exc.__class__.__name__}: {exc})"
            ) from exc
        by_purpose = {cam.get("Purpose"): cam for cam in cameras}
        depth_raw = by_purpose.get("CALIBRATION_CameraPurposeDepth")
        color_raw = by_purpose.get("CALIBRATION_CameraPurposePhotoVideo")
        if depth_raw is None or color_raw is None:
            raise FormatError(source, "the calibration lacks the depth or the colour camera")
        depth_mode = depth_mode.upper().removeprefix("K4A_DEPTH_MODE_")
        color_resolution = color_resolution.upper().removeprefix("K4A_COLOR_RESOLUTION_")
        if depth_mode not in DEPTH_MODES:
            raise FormatError(source, f"unknown depth mode {depth_mode!r}")
        if color_resolution not in COLOR_RESOLUTIONS:
            raise FormatError(source, f"unknown colour resolution {color_resolution!r}")
        depth_rt = _rt(depth_raw, source)
        color_rt = _rt(color_raw, source)
        # Each camera's Rt maps the reference (the depth camera) to that camera; express the
        # colour camera relative to the depth camera whatever the reference is.
        r_d, t_d = depth_rt
        r_c, t_c = color_rt
        r_dc = r_c @ r_d.T
        t_dc = t_c - r_dc @ t_d
        depth = _camera(
            depth_raw, DEPTH_MODES[depth_mode], np.eye(3), np.zeros(3), source, is_color=False
        )
        color = _camera(
            color_raw, COLOR_RESOLUTIONS[color_resolution], r_dc, t_dc * 1000.0, source, True
        )
        return cls(raw, depth, color, depth_mode, color_resolution)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Calibration:
        return cls.from_json(Path(path).read_text(), source=path, **kwargs)

    def to_ntu_pixels(self, joints_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth-space joints (..., 3) in mm -> NTU's (colour px, depth px), each (..., 2),
        mirrored horizontally like NTU's (u' = W - 1 - u)."""
        from xmkd.skeleton import mirror_pixels

        color_uv, _ = self.color.project(joints_mm)
        depth_uv, _ = self.depth.project(joints_mm)
        color_uv[..., 0] = mirror_pixels(color_uv[..., 0], self.color.width)
        depth_uv[..., 0] = mirror_pixels(depth_uv[..., 0], self.depth.width)
        return color_uv, depth_uv


def _rt(cam: dict[str, Any], source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        rotation = np.asarray(cam["Rt"]["Rotation"], dtype=np.float64).reshape(3, 3)
        translation = np.asarray(cam["Rt"]["Translation"], dtype=np.float64).reshape(3)
    except (KeyError, ValueError) as exc:
        raise FormatError(source, f"camera {cam.get('Purpose')} has no valid Rt") from exc
    return rotation, translation


def _camera(
    cam: dict[str, Any],
    mode: tuple[tuple[int, int], tuple[int, int], tuple[int, int]],
    rotation: np.ndarray,
    translation_mm: np.ndarray,
    source: str | Path,
    is_color: bool,
) -> CameraModel:
    intr = cam.get("Intrinsics", {})
    params = intr.get("ModelParameters", [])
    if len(params) < 14 or "BrownConrady" not in str(intr.get("ModelType", "")):
        raise FormatError(
            source,
            f"camera {cam.get('Purpose')} needs 14 Brown-Conrady model parameters "
            f"(found {len(params)}, model {intr.get('ModelType')})",
        )
    # k4a's order: cx cy fx fy k1..k6 codx cody p2 p1, normalised to the sensor.
    cx, cy, fx, fy, k1, k2, k3, k4, k5, k6, codx, cody, p2, p1 = (float(v) for v in params[:14])
    width, height = int(cam.get("SensorWidth", 0)), int(cam.get("SensorHeight", 0))
    if is_color and width * 9 // 16 == height:
        # legacy 16:9 colour calibration: re-express it in the 4:3 sensor first (as k4a does)
        cy, fy = (cy * 2304 + 384) / 3072, fy * 2304 / 3072
    (bw, bh), (ox, oy), (ow, oh) = mode
    return CameraModel(
        width=ow,
        height=oh,
        cx=cx * bw - ox - 0.5,
        cy=cy * bh - oy - 0.5,
        fx=fx * bw,
        fy=fy * bh,
        k=(k1, k2, k3, k4, k5, k6),
        p1=p1,
        p2=p2,
        codx=codx,
        cody=cody,
        metric_radius=float(cam.get("MetricRadius", 0.0)),
        rotation=np.asarray(rotation, dtype=np.float64),
        translation_mm=np.asarray(translation_mm, dtype=np.float64),
    )
