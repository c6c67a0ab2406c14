"""Depth lifting: 2D keypoints of an RGB pose estimator + depth aligned to the colour image + the
colour camera's intrinsics -> camera-space joints in metres, in NTU's axes and conventions.

For any RGB-D camera without the Body Tracking SDK (an Azure Kinect or Orbbec Femto stream, a
recorded Kinect MKV, a RealSense). Per keypoint:

1. Depth is sampled robustly in a small window around the pixel: zeros (no return) are ignored,
   samples farther than ``body_tolerance_mm`` from the body's median depth are rejected (the
   background behind an arm's edge, an object in front of the person), and of the rest the
   foreground cluster (within ``foreground_mm`` of the window's nearest fifth) gives the median:
   a keypoint on a limb's edge reads the limb, not the wall behind it.
2. A keypoint with too few trusted samples (occluded, no return, off the image) is "inferred":
   its depth is the median of its nearest keypoints (in the image) that have one, or the body's
   median depth when none has.
3. The pixel and depth are unprojected with the camera model (pinhole `Intrinsics`, or the Azure
   Kinect's Brown-Conrady `CameraModel` inverted numerically), and moved ``surface_offset_mm``
   further along the ray, since a keypoint seen on the skin lies in front of the joint centre
   the Kinect's skeleton reports.
4. The points go to NTU-25 through the estimator's `xmkd.skeleton.JointLayout` (derived joints,
   tracking states) and to NTU's axes as Azure Kinect bodies do: camera space (+x right, +y down,
   mm) -> NTU (-x, -y, z) / 1000; colour pixels are mirrored like NTU's (u' = W - 1 - u).

`depth_to_color` resamples a Kinect depth image into the colour camera (what
``k4a_transformation_depth_image_to_color_camera`` does) for recordings that store depth in the
depth camera's geometry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from capture.bodyids import BodyIds, keypoint_box
from capture.calibration import Calibration, CameraModel
from capture.frames import Body
from xmkd.skeleton import INFERRED, NOT_TRACKED, TRACKED, JointLayout, mirror_pixels


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole colour camera (OpenCV convention: (0, 0) is the centre of the top-left pixel);
    the default focal length suits a webcam's ~65 degree horizontal field of view."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def default_for(cls, width: int, height: int, hfov_deg: float = 65.0) -> Intrinsics:
        """A camera with square pixels, the principal point at the centre, ``hfov_deg`` wide."""
        f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
        return cls(width, height, float(f), float(f), (width - 1) / 2, (height - 1) / 2)

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) -> pixels (..., 2)."""
        p = np.asarray(points_mm, dtype=np.float64)
        return np.stack(
            [p[..., 0] / p[..., 2] * self.fx + self.cx, p[..., 1] / p[..., 2] * self.fy + self.cy],
            axis=-1,
        )

    def unproject(self, uv: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) at depths (...,) -> camera-space points (..., 3) in mm."""
        uv = np.asarray(uv, dtype=np.float64)
        z = np.asarray(z_mm, dtype=np.float64)
        x = (uv[..., 0] - self.cx) / self.fx * z
        y = (uv[..., 1] - self.cy) / self.fy * z
        return np.stack([x, y, z], axis=-1)


def unproject_camera(
    model: CameraModel, uv: np.ndarray, z_mm: np.ndarray, iterations: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (..., 2) of a k4a camera at depths (...,) -> (points (..., 3) mm in that camera's
    own 3D space, valid (...,)), inverting `CameraModel.project` (the SDK's Brown-Conrady model)
    by Gauss-Newton as ``k4a_calibration_2d_to_3d`` does. Valid: converged within 0.01 px."""
    own = dataclasses.replace(model, rotation=np.eye(3), translation_mm=np.zeros(3))
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(z_mm, dtype=np.float64)
    # start from the undistorted pinhole guess; xy is the ray at z = 1
    xy = np.stack([(uv[..., 0] - own.cx) / own.fx, (uv[..., 1] - own.cy) / own.fy], axis=-1)
    ones = np.ones(uv.shape[:-1])
    eps = 1e-6

    def proj(p: np.ndarray) -> np.ndarray:
        return own.project(np.concatenate([p, ones[..., None]], axis=-1))[0]

    for _ in range(iterations):
        at = proj(xy)
        f = at - uv
        if not np.any(np.abs(f) > 1e-4):  # converged everywhere (usually 3-5 steps)
            break
        jx = (proj(xy + [eps, 0.0]) - at) / eps
        jy = (proj(xy + [0.0, eps]) - at) / eps
        det = jx[..., 0] * jy[..., 1] - jy[..., 0] * jx[..., 1]
        det = np.where(np.abs(det) > 1e-12, det, 1e-12)
        dx = (jy[..., 1] * f[..., 0] - jy[..., 0] * f[..., 1]) / det
        dy = (-jx[..., 1] * f[..., 0] + jx[..., 0] * f[..., 1]) / det
        xy = xy - np.stack([dx, dy], axis=-1)
    residual = np.linalg.norm(proj(xy) - uv, axis=-1)
    valid = (residual < 0.01) & (z > 0)
    points = np.concatenate([xy * z[..., None], z[..., None]], axis=-1)
    return points, valid


_RAYS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _lens_key(model: CameraModel) -> tuple:
    """What a camera's pixel rays depend on (not its pose): equal for every `Calibration`
    parsed from the same device's JSON in the same mode, whichever object holds it."""
    return (model.width, model.height, model.cx, model.cy, model.fx, model.fy, *model.k,
            model.p1, model.p2, model.codx, model.cody, model.metric_radius)  # fmt: skip


def _pixel_rays(model: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's ray (H, W, 3) at z = 1 and whether the lens model covers it (H, W): the
    numerical inversion (~0.3-0.7 s for 640x576) runs once per lens, not once per frame."""
    key = _lens_key(model)
    cached = _RAYS.get(key)
    if cached is None:
        v, u = np.mgrid[0 : model.height, 0 : model.width]
        uv = np.stack([u, v], axis=-1).astype(np.float64)
        rays, ok = unproject_camera(model, uv, np.ones(uv.shape[:-1]))
        if len(_RAYS) >= 4:
            _RAYS.clear()
        cached = _RAYS[key] = (rays, ok)
    return cached


def depth_to_color(
    depth: np.ndarray,
    calibration: Calibration,
    near: np.ndarray | None = None,
    radius: int = 4,
) -> np.ndarray:
    """A k4a depth image (H_d, W_d) uint16 mm, not mirrored -> depth in the colour camera's
    geometry (H_c, W_c) uint16 mm: every valid depth pixel is unprojected, moved into the colour
    camera and splatted (2x2, nearest surface wins); pixels nothing lands on stay 0.

    ``near``: colour pixels (N, 2) (keypoints, not mirrored); only the depth pixels that can land
    within ``radius`` colour pixels of one of them are transformed (`depth_pixels_near`), so the
    result equals the whole transformation of the depth from 0.25 m on in those windows, and is
    0 elsewhere. Lifting needs
    nothing more, and it is what makes lifting live: on the real 720p/NFOV recording the whole
    image costs ~0.1-0.3 s on 2 busy cores, 17 keypoints' windows ~3-10 ms
    (``bench/bench_lifted_capture.py`` prints both)."""
    d_model, c_model = calibration.depth, calibration.color
    depth = np.asarray(depth)
    if near is None:
        rays, ray_ok = _pixel_rays(d_model)
        ok = (depth > 0) & ray_ok
        pts = rays[ok] * depth[ok].astype(np.float64)[:, None]
    else:  # a few thousand pixels: unprojecting them now costs what reading a table would
        near_mask = depth_pixels_near(calibration, near, radius)
        v, u = np.nonzero((depth >= _RAY_DEPTHS_MM[0]) & near_mask)
        pts, valid = unproject_camera(d_model, np.stack([u, v], -1).astype(np.float64), depth[v, u])
        pts = pts[valid]
    uv, in_model = c_model.project(pts)
    zc = pts @ c_model.rotation[2] + c_model.translation_mm[2]
    out = np.full((c_model.height, c_model.width), np.inf)
    for du in (0, 1):  # splat 2x2: the colour image is finer than the depth image
        for dv in (0, 1):
            cu = np.floor(uv[:, 0]).astype(np.int64) + du
            cv = np.floor(uv[:, 1]).astype(np.int64) + dv
            inside = in_model & (cu >= 0) & (cu < c_model.width) & (cv >= 0)
            inside &= cv < c_model.height
            np.minimum.at(out, (cv[inside], cu[inside]), zc[inside])
    out[~np.isfinite(out)] = 0
    return np.clip(np.round(out), 0, 65535).astype(np.uint16)


#: the depths (mm) a keypoint's colour ray is followed through to find the depth pixels that can
#: land near it: the Azure Kinect's and Femto's operating ranges (0.25-5.5 m) with margin. Depth
#: returns closer than the first are ignored near keypoints (no joint is that close; the real
#: recording in tests/data has stray returns at 215 mm), since following the ray closer widens
#: the searched strip by the parallax (~16 depth pixels per 1/m).
_RAY_DEPTHS_MM = np.geomspace(250.0, 12000.0, 24)


def depth_pixels_near(calibration: Calibration, near: np.ndarray, radius: int) -> np.ndarray:
    """Mask (H_d, W_d) of the depth pixels whose 3D point can project within ``radius`` colour
    pixels of any of ``near`` (N, 2) colour pixels, at any depth from 0.25 to 12 m: each pixel's
    colour ray, followed through that range, traces a short segment (the epipolar line) in the
    depth image; its bounding box, widened by the window's size in depth pixels, is kept."""
    d_model, c_model = calibration.depth, calibration.color
    mask = np.zeros((d_model.height, d_model.width), dtype=bool)
    uv = np.asarray(near, dtype=np.float64).reshape(-1, 2)
    inside = np.all(np.isfinite(uv), axis=1)
    inside &= (uv[:, 0] > -radius) & (uv[:, 0] < c_model.width + radius)
    inside &= (uv[:, 1] > -radius) & (uv[:, 1] < c_model.height + radius)
    uv = uv[inside]
    if not len(uv):
        return mask
    zs = _RAY_DEPTHS_MM
    rays, ok = unproject_camera(c_model, uv, np.ones(len(uv)))  # colour camera space, z = 1
    pts_c = rays[:, None, :] * zs[None, :, None]  # (N, Z, 3)
    pts_d = (pts_c - c_model.translation_mm) @ c_model.rotation  # into the depth camera
    px, valid = d_model.project(pts_d)
    # a colour pixel spans about fx_d / fx_c depth pixels; +2 for the 2x2 splat and rounding
    margin = int(np.ceil(radius * d_model.fx / c_model.fx)) + 2
    for k in range(len(uv)):
        good = valid[k] & ok[k]
        if not np.any(good):
            continue
        u0, v0 = np.floor(px[k, good].min(axis=0)).astype(int) - margin
        u1, v1 = np.ceil(px[k, good].max(axis=0)).astype(int) + margin + 1
        mask[max(v0, 0) : max(v1, 0), max(u0, 0) : max(u1, 0)] = True
    return mask


@dataclass
class LiftedBody:
    """One person lifted: the estimator's keypoints and the NTU-25 body made of them."""

    points_mm: np.ndarray  # (K, 3) camera space (+x right, +y down, +z forward), mm
    states: np.ndarray  # (K,) NTU tracking state per keypoint (depth trusted or not)
    body: Body  # NTU-25, metres, NTU axes, mirrored pixels


class DepthLifter:
    """Lifts 2D keypoints of one `JointLayout` with depth aligned to the colour image."""

    def __init__(
        self,
        camera: Intrinsics | CameraModel,
        layout: JointLayout,
        *,
        radius: int = 4,
        body_tolerance_mm: float = 800.0,
        foreground_mm: float = 150.0,
        min_valid: float = 0.15,
        surface_offset_mm: float = 0.0,
        neighbours: int = 3,
        mirrored: bool = False,
        calibration: Calibration | None = None,
    ):
        """``camera``: the colour camera; ``radius``: the sampling window's half size in pixels;
        ``min_valid``: the share of the window's pixels that must be trusted for the keypoint
        to count as tracked; ``mirrored``: keypoints, colour and depth come mirrored like NTU's
        videos (as capture sources deliver them); ``calibration``: an Azure Kinect's, to report
        joints in the depth camera's space like the Body Tracking SDK and fill NTU's depth
        pixels (without it, joints are in the colour camera's space and depth pixels equal
        the colour ones)."""
        self.camera = camera
        self.layout = layout
        self.radius = int(radius)
        self.body_tolerance_mm = float(body_tolerance_mm)
        self.foreground_mm = float(foreground_mm)
        self.min_valid = float(min_valid)
        self.surface_offset_mm = float(surface_offset_mm)
        self.neighbours = int(neighbours)
        self.mirrored = mirrored
        self.calibration = calibration

    @property
    def width(self) -> int:
        return int(self.camera.width)

    # ---- depth sampling ---------------------------------------------------------------------
    def _windows(self, depth: np.ndarray, uv: np.ndarray) -> list[np.ndarray]:
        h, w = depth.shape
        out = []
        for u, v in np.round(uv).astype(np.int64):
            u0, u1 = max(u - self.radius, 0), min(u + self.radius + 1, w)
            v0, v1 = max(v - self.radius, 0), min(v + self.radius + 1, h)
            win = depth[v0:v1, u0:u1].astype(np.float64).ravel() if u0 < u1 and v0 < v1 else []
            out.append(np.asarray(win, dtype=np.float64))
        return out

    def sample_depth(self, depth: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth (K,) mm at keypoints (K, 2) of an unmirrored image, and whether each is
        trusted (K,) bool; untrusted keypoints are filled from neighbours or the body median."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        windows = self._windows(np.asarray(depth), uv)
        full = (2 * self.radius + 1) ** 2
        rough = np.array([np.median(w[w > 0]) if np.any(w > 0) else np.nan for w in windows])
        body = float(np.nanmedian(rough)) if np.any(np.isfinite(rough)) else np.nan
        z = np.full(len(uv), np.nan)
        trusted = np.zeros(len(uv), dtype=bool)
        for k, win in enumerate(windows):
            good = win[win > 0]
            if np.isfinite(body):
                good = good[np.abs(good - body) <= self.body_tolerance_mm]
            if good.size == 0:
                continue
            near = np.quantile(good, 0.2)
            front = good[good <= near + self.foreground_mm]
            z[k] = float(np.median(front))
            trusted[k] = front.size >= self.min_valid * full
        # untrusted: nearest keypoints (in the image) that are trusted, else the body median
        for k in np.nonzero(~trusted)[0]:
            others = np.nonzero(trusted)[0]
            if others.size:
                dist = np.linalg.norm(uv[others] - uv[k], axis=1)
                z[k] = float(np.median(z[others[np.argsort(dist)[: self.neighbours]]]))
            elif np.isfinite(z[k]):
                pass  # a few samples and nothing better: keep them (still inferred)
            else:
                z[k] = body
        return z, trusted

    # ---- lifting ----------------------------------------------------------------------------
    def lift(
        self,
        keypoints_px: np.ndarray,
        depth: np.ndarray,
        states: np.ndarray | None = None,
        body_id: int = 0,
    ) -> LiftedBody | None:
        """One person: keypoints (K, 2) in colour pixels, ``depth`` aligned to the colour image
        (uint16 mm, 0 = no return), the estimator's per-keypoint NTU states (K,) (default all
        tracked). None when no depth at all is found for the person."""
        kp = np.asarray(keypoints_px, dtype=np.float64).reshape(-1, 2)
        if kp.shape[0] != self.layout.num_joints:
            raise ValueError(
                f"{self.layout.name} has {self.layout.num_joints} keypoints, got {kp.shape[0]}"
            )
        est = (
            np.full(len(kp), TRACKED, dtype=np.int64)
            if states is None
            else np.asarray(states, dtype=np.int64).reshape(-1)
        )
        depth = np.asarray(depth)
        uv = kp.copy()
        if self.mirrored:  # work in the camera's own view
            uv[:, 0] = mirror_pixels(uv[:, 0], self.width)
            depth = depth[:, ::-1]
        # keypoints the estimator did not find do not vote for the body's depth
        z, trusted = self.sample_depth(depth, np.where((est > NOT_TRACKED)[:, None], uv, -1e6))
        if not np.any(np.isfinite(z)):
            return None
        if isinstance(self.camera, Intrinsics):
            pts = self.camera.unproject(uv, z)
        else:
            pts, _ = unproject_camera(self.camera, uv, z)
        if self.surface_offset_mm:
            rays = pts / np.linalg.norm(pts, axis=1, keepdims=True)
            pts = pts + rays * self.surface_offset_mm
        kp_states = np.where(trusted, est, np.minimum(est, INFERRED))
        return LiftedBody(pts, kp_states, self._ntu_body(pts, uv, kp_states, body_id))

    def _ntu_body(
        self, pts_mm: np.ndarray, uv: np.ndarray, states: np.ndarray, body_id: int
    ) -> Body:
        joints_cam = self.layout.to_ntu(pts_mm)  # (25, 3) mm in the colour camera
        if self.calibration is not None:
            # into the depth camera's space, where the Body Tracking SDK reports joints
            color = self.calibration.color
            joints_cam = (joints_cam - color.translation_mm) @ color.rotation
            color_px, depth_px = self.calibration.to_ntu_pixels(joints_cam)
        else:
            color_px = self.layout.to_ntu(uv)
            color_px[:, 0] = mirror_pixels(color_px[:, 0], self.width)
            depth_px = color_px.copy()
        joints = joints_cam * np.array([-1.0, -1.0, 1.0]) / 1000.0  # as azure_to_ntu_positions
        return Body(
            id=body_id,
            joints=joints,
            color_px=color_px,
            depth_px=depth_px,
            tracking=self.layout.tracking(states),
        )

    def lift_people(
        self,
        people: list[tuple[np.ndarray, np.ndarray | None]],
        depth: np.ndarray,
        ids: BodyIds,
    ) -> list[Body]:
        """Every person of one frame ((keypoints (K, 2), states (K,) or None) each) as NTU
        bodies with IDs kept stable across frames by ``ids`` (one `BodyIds` per camera)."""
        boxes = [
            keypoint_box(kp, None if st is None else np.asarray(st) > NOT_TRACKED)
            for kp, st in people
        ]
        bodies = []
        for (kp, st), body_id in zip(people, ids.assign(boxes), strict=True):
            lifted = self.lift(kp, depth, st, body_id)
            if lifted is not None:
                bodies.append(lifted.body)
        return bodies
