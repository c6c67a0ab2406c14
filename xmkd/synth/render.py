"""Cameras and the RGB renderer of the synthetic data.

Placement: the body frame of :mod:`xmkd.synth.motion` (l, u, f) is turned to face the camera,
rotated by the view's yaw (NTU-like cameras C001 0 deg, C002 +45 deg, C003 -45 deg) and moved
2.6-3.4 m in front of a camera at 0.7-1.0 m height, giving Kinect v2 camera-space joints in
metres: +x to the sensor's left, +y up, +z forward.

Projection: a pinhole with the principal point at the image centre. As in NTU, pixel u grows
with x (to the sensor's left), so videos and pixel coordinates are mirrored relative to a
camera's-eye view (``u = cx + f x / z``, ``v = cy - f y / z``). Depth pixels use the Kinect v2
depth model measured on NTU (512x424: ``depthX = 368 x/z + 259``, ``depthY = -367 y/z + 209``).

Rendering draws, far to near, a room (wall, floor, clutter shapes), the body as thick limbs with
the subject's colours, a head with hair, and held objects at the hand; optional occluding boxes;
then it downsamples (anti-aliasing), applies a lighting gain and pixel noise. Frames are BGR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from xmkd.synth import motion as M

#: Yaw (degrees) of each camera around the subject, NTU-like: front and +-45 degrees.
VIEW_YAW_DEG = {1: 0.0, 2: 45.0, 3: -45.0}
DEPTH_MODEL = {"fx": 368.0, "cx": 259.0, "fy": -367.0, "cy": 209.0, "width": 512, "height": 424}
SUPERSAMPLE = 2  # draw at 2x and downsample with INTER_AREA

# Physical object sizes (m): (length along the hand, width). Exaggerated ~1.5x so a 64 px frame
# still shows them as a few pixels, as NTU's 1080p videos show a cup at TSN's 340x256 input.
OBJECT_SIZE = {
    "cup": (0.20, 0.16),
    "phone": (0.22, 0.12),
    "food": (0.18, 0.16),
    "pen": (0.24, 0.03),
    "notepad": (0.30, 0.22),
    "toothbrush": (0.26, 0.035),
}
# BGR palettes, one colour family per kind (as real cups, phones and snacks look different):
# cups white or red, phones black with a lit screen, food yellow/orange/green.
OBJECT_COLOURS = {
    "cup": ((240, 240, 240), (215, 215, 250), (40, 40, 220)),
    "phone": ((20, 20, 20), (40, 35, 35)),
    "food": ((0, 210, 255), (0, 140, 255), (40, 200, 120)),
    "pen": ((160, 40, 0), (20, 20, 200), (10, 10, 10)),
    "notepad": ((245, 245, 245), (150, 240, 250)),
    "toothbrush": ((240, 240, 240), (90, 200, 60), (230, 120, 200)),
}
PHONE_SCREEN = (255, 215, 110)


class RenderCancelled(Exception):
    """`render_clip` was told to stop (its ``should_stop`` said True) before the clip was done."""


@dataclass(frozen=True)
class Pinhole:
    """The colour camera: image size and pinhole intrinsics (pixels)."""

    width: int
    height: int
    f: float
    cx: float
    cy: float

    @classmethod
    def for_size(cls, width: int, height: int) -> Pinhole:
        # focal 1.25 x width: a 1.8 m person at 3 m fills about 3/4 of the frame height
        return cls(width, height, 1.25 * width, (width - 1) / 2.0, (height - 1) / 2.0)

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """(..., 3) camera-space metres -> (..., 2) mirrored pixel coordinates (u, v)."""
        z = np.maximum(xyz[..., 2], 1e-3)
        return np.stack(
            [self.cx + self.f * xyz[..., 0] / z, self.cy - self.f * xyz[..., 1] / z], axis=-1
        )

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "fx": self.f,
            "fy": self.f,
            "cx": self.cx,
            "cy": self.cy,
            "mirrored": True,
            "model": "u = cx + fx*x/z, v = cy - fy*y/z (NTU-mirrored, Kinect v2 axes)",
        }


def depth_pixels(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 2) Kinect v2 depth-image pixels (NTU's measured model)."""
    z = np.maximum(xyz[..., 2], 1e-3)
    d = DEPTH_MODEL
    return np.stack([d["cx"] + d["fx"] * xyz[..., 0] / z, d["cy"] + d["fy"] * xyz[..., 1] / z], -1)


@dataclass(frozen=True)
class Placement:
    """Where the subject stands relative to one camera."""

    yaw: float  # radians: 0 = facing the camera
    distance: float  # metres along +z
    lateral: float  # metres along +x
    camera_height: float  # metres above the floor


def make_placement(camera: int, rng: np.random.Generator) -> Placement:
    yaw = np.deg2rad(VIEW_YAW_DEG.get(camera, 0.0) + rng.normal(0.0, 6.0))
    return Placement(
        float(yaw),
        float(rng.uniform(2.6, 3.4)),
        float(rng.uniform(-0.25, 0.25)),
        float(rng.uniform(0.7, 1.0)),
    )


def body_to_camera(points: np.ndarray, pl: Placement) -> np.ndarray:
    """Body-frame (l, u, f) points (..., 3) -> Kinect v2 camera space (x, y, z) metres.

    Facing the camera, the subject's left is the sensor's right (-x), forward is -z."""
    x, y, z = -points[..., 0], points[..., 1], -points[..., 2]
    c, s = np.cos(pl.yaw), np.sin(pl.yaw)
    xr, zr = c * x + s * z, -s * x + c * z
    return np.stack([xr + pl.lateral, y - pl.camera_height, zr + pl.distance], axis=-1)


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Occluder:
    """A box in front of the subject during frames [start, stop) (video pixel coordinates)."""

    start: int
    stop: int
    box: tuple[float, float, float, float]  # u0 v0 u1 v1
    colour: tuple[int, int, int]

    def covers(self, uv: np.ndarray, frame: int) -> np.ndarray:
        if not self.start <= frame < self.stop:
            return np.zeros(uv.shape[:-1], dtype=bool)
        u0, v0, u1, v1 = self.box
        return (uv[..., 0] >= u0) & (uv[..., 0] <= u1) & (uv[..., 1] >= v0) & (uv[..., 1] <= v1)


def make_occluders(
    rng: np.random.Generator, frames: int, cam: Pinhole, probability: float
) -> list[Occluder]:
    """With ``probability``, a box (furniture, a passer-by) hides part of the subject for a
    stretch of frames: mostly the lower body, never the whole person (a clip nobody could label
    from the video would only add noise)."""
    if rng.random() >= probability:
        return []
    w, h = cam.width, cam.height
    length = int(rng.integers(max(frames // 4, 1), frames + 1))
    start = int(rng.integers(0, frames - length + 1))
    bw, bh = rng.uniform(0.15, 0.35) * w, rng.uniform(0.15, 0.35) * h
    u0 = rng.uniform(0.2, 0.8) * w - bw / 2
    v0 = rng.uniform(0.55, 1.0) * h - bh / 2
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    return [Occluder(start, start + length, (u0, v0, u0 + bw, v0 + bh), colour)]


def _room(rng: np.random.Generator, cam: Pinhole, pl: Placement) -> np.ndarray:
    """Static background at the supersampled size: wall, floor, clutter. Colours are muted
    (greys with a tint, as real rooms are), so the body and held objects stand out about as they
    do in NTU's videos."""
    S = SUPERSAMPLE
    W, H = cam.width * S, cam.height * S
    wall = rng.uniform(70, 220) + rng.uniform(-25, 25, 3)
    floor = rng.uniform(40, 160) + rng.uniform(-20, 20, 3)
    img = np.empty((H, W, 3), np.float32)
    horizon = int(np.clip(S * (cam.cy + cam.f * pl.camera_height / 5.5), H * 0.45, H - 4))
    grad = np.linspace(0.85, 1.1, H, dtype=np.float32)[:, None, None]
    img[:horizon] = wall * grad[:horizon]
    img[horizon:] = floor * grad[horizon:][::-1]
    for _ in range(int(rng.integers(4, 10))):
        tint = rng.uniform(30, 220) + rng.uniform(-60, 60, 3)
        colour = tuple(float(c) for c in np.clip(tint, 0, 255))
        cx_, cy_ = rng.uniform(0, W), rng.uniform(0, H * 0.9)
        size = rng.uniform(0.05, 0.3) * W
        kind = rng.integers(3)
        if kind == 0:
            p0 = (int(cx_ - size / 2), int(cy_ - size / 2))
            p1 = (int(cx_ + size / 2), int(cy_ + size * rng.uniform(0.3, 1.5)))
            cv2.rectangle(img, p0, p1, colour, -1)
        elif kind == 1:
            cv2.circle(img, (int(cx_), int(cy_)), int(size / 3), colour, -1, cv2.LINE_AA)
        else:
            p1 = (int(cx_ + rng.uniform(-1, 1) * size), int(cy_ + rng.uniform(-1, 1) * size))
            cv2.line(img, (int(cx_), int(cy_)), p1, colour, int(rng.integers(2, 6)), cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


# Limb primitives: (joint a, joint b, width in metres, part) where part picks the colour.
_LIMBS = [
    (M.HIP[1], M.KNEE[1], 0.14, "pants"),
    (M.KNEE[1], M.ANKLE[1], 0.11, "pants"),
    (M.ANKLE[1], M.FOOT[1], 0.08, "shoe"),
    (M.HIP[-1], M.KNEE[-1], 0.14, "pants"),
    (M.KNEE[-1], M.ANKLE[-1], 0.11, "pants"),
    (M.ANKLE[-1], M.FOOT[-1], 0.08, "shoe"),
    (M.SPINE_BASE, M.SPINE_SHOULDER, 0.26, "shirt"),
    (M.SPINE_SHOULDER, M.NECK, 0.08, "skin"),
    (M.SHOULDER[1], M.ELBOW[1], 0.10, "shirt"),
    (M.ELBOW[1], M.WRIST[1], 0.08, "sleeve"),
    (M.WRIST[1], M.HAND[1], 0.075, "skin"),
    (M.SHOULDER[-1], M.ELBOW[-1], 0.10, "shirt"),
    (M.ELBOW[-1], M.WRIST[-1], 0.08, "sleeve"),
    (M.WRIST[-1], M.HAND[-1], 0.075, "skin"),
]


def render_clip(
    joints_cam: np.ndarray,
    hand_dirs: dict[int, np.ndarray],
    objects: list[tuple[str, int]],
    subject: M.Subject,
    cam: Pinhole,
    pl: Placement,
    occluders: list[Occluder],
    rng: np.random.Generator,
    pixel_noise: float,
    room_rng: np.random.Generator | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Render (T, H, W, 3) uint8 BGR frames of the clean camera-space joints (T, 25, 3).

    ``hand_dirs[side]`` (T, 3) is the camera-space direction wrist -> hand tip, along which a
    held object is drawn. ``room_rng`` draws the background (default: ``rng``); the generator
    passes one seeded per room so that several clips share a room, as NTU's clips share the
    setups' rooms. ``should_stop`` is asked before each frame; when it says True the rendering
    raises `RenderCancelled` (a live source closing must not wait for a long clip)."""
    S = SUPERSAMPLE
    T = joints_cam.shape[0]
    room = _room(room_rng if room_rng is not None else rng, cam, pl)
    uv = cam.project(joints_cam) * S
    z = joints_cam[..., 2]
    px_per_m = cam.f * S / np.maximum(z, 1e-3)  # (T, 25)
    long_sleeves = rng.random() < 0.5
    colours = {
        "skin": subject.skin,
        "shirt": subject.shirt,
        "sleeve": subject.shirt if long_sleeves else subject.skin,
        "pants": subject.pants,
        "shoe": (30, 30, 40),
    }
    obj_colours = [OBJECT_COLOURS[k][int(rng.integers(len(OBJECT_COLOURS[k])))] for k, _ in objects]
    gain = rng.uniform(0.75, 1.2)
    cast = rng.uniform(0.92, 1.08, 3)
    noise_sigma = pixel_noise * rng.uniform(0.6, 1.4)
    out = np.empty((T, cam.height, cam.width, 3), np.uint8)

    # Per-frame geometry as plain Python lists: the loop below only calls OpenCV.
    pts = np.rint(uv).astype(np.int64).tolist()  # (T, 25, 2)
    zl = z.tolist()
    limb_th = [
        np.maximum(np.rint(w * 0.5 * (px_per_m[:, a] + px_per_m[:, b])), 1).astype(int).tolist()
        for a, b, w, _ in _LIMBS
    ]
    head_r = np.maximum(np.rint(0.11 * px_per_m[:, M.HEAD]), 2).astype(int).tolist()
    hand_r = {
        s: np.maximum(np.rint(0.045 * px_per_m[:, M.HAND[s]]), 1).astype(int).tolist()
        for s in (+1, -1)
    }
    quad_idx = [M.SHOULDER[1], M.SHOULDER[-1], M.HIP[-1], M.HIP[1]]
    quads = np.rint(uv[:, quad_idx]).astype(np.int32)
    held = []  # per object: centre (T, 2), angle (T,), length/width px (T,), depth (T,)
    for kind, side in objects:
        length, width = OBJECT_SIZE[kind]
        direction = hand_dirs[side]
        centre = joints_cam[:, M.HAND[side]] + direction * (0.2 * length)
        c2 = cam.project(centre) * S
        tip = cam.project(centre + direction * 0.1) * S
        ang = np.arctan2(tip[:, 1] - c2[:, 1], tip[:, 0] - c2[:, 0])
        scale = cam.f * S / np.maximum(centre[:, 2], 1e-3)
        held.append((kind, c2, ang, length * scale, width * scale, centre[:, 2] - 0.04))
    # Pixel noise from a small bank of noise images at random offsets (drawing fresh Gaussian
    # noise for every pixel of every frame would dominate the generation time).
    pad = 8
    bank = rng.standard_normal((4, cam.height + pad, cam.width + pad, 3), dtype=np.float32)
    bank *= noise_sigma
    picks = rng.integers(0, [4, pad + 1, pad + 1], (T, 3)).tolist()
    scale_rgb = (gain * cast).astype(np.float32)

    for t in range(T):
        if should_stop is not None and should_stop():
            raise RenderCancelled(f"rendering stopped at frame {t} of {T}")
        img = room.copy()
        p, zt = pts[t], zl[t]
        prims: list[tuple[float, Any]] = []
        for k, (a, b, _, part) in enumerate(_LIMBS):
            prims.append((0.5 * (zt[a] + zt[b]), _line(p[a], p[b], colours[part], limb_th[k][t])))
        prims.append((zt[M.SPINE_MID] + 0.01, _poly(quads[t], subject.shirt)))
        prims.append((zt[M.HEAD], _head(p[M.HEAD], head_r[t], subject.skin, subject.hair)))
        for side in (+1, -1):
            j = M.HAND[side]
            prims.append((zt[j] - 0.01, _circle(p[j], hand_r[side][t], subject.skin)))
        for (kind, c2, ang, ln, wd, depth), colour in zip(held, obj_colours):
            prims.append((float(depth[t]), _object(kind, c2[t], ang[t], ln[t], wd[t], colour)))
        for _, draw in sorted(prims, key=lambda q: -q[0]):
            draw(img)
        for occ in occluders:
            if occ.start <= t < occ.stop:
                u0, v0, u1, v1 = (int(round(v * S)) for v in occ.box)
                cv2.rectangle(img, (u0, v0), (u1, v1), occ.colour, -1)
        small = cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
        k, dy, dx = picks[t]
        f = small.astype(np.float32) * scale_rgb
        f += bank[k, dy : dy + cam.height, dx : dx + cam.width]
        np.clip(f, 0, 255, out=f)
        out[t] = f.astype(np.uint8)
    return out


def _line(pa, pb, colour, th):
    def draw(img):
        cv2.line(img, pa, pb, colour, th, cv2.LINE_AA)

    return draw


def _poly(quad, colour):
    pts = np.round(quad).astype(np.int32)

    def draw(img):
        cv2.fillConvexPoly(img, pts, colour, cv2.LINE_AA)

    return draw


def _circle(c, r, colour):
    def draw(img):
        cv2.circle(img, c, r, colour, -1, cv2.LINE_AA)

    return draw


def _head(c, r, skin, hair):
    def draw(img):
        cv2.circle(img, (c[0], c[1] - max(r // 4, 1)), r, hair, -1, cv2.LINE_AA)
        cv2.circle(img, (c[0], c[1] + max(r // 6, 1)), max(r - 1, 1), skin, -1, cv2.LINE_AA)

    return draw


def _object(kind: str, centre, angle: float, length: float, width: float, colour):
    """A held object as a rotated shape at ``centre`` (supersampled pixels)."""
    cx, cy = float(centre[0]), float(centre[1])
    deg = float(np.degrees(angle))
    length, width = max(length, 2.0), max(width, 1.5)

    def box(img, l_, w_, col, ang=deg):
        pts = cv2.boxPoints(((cx, cy), (l_, w_), ang)).astype(np.int32)
        cv2.fillConvexPoly(img, pts, col, cv2.LINE_AA)

    def draw(img):
        if kind == "cup":  # upright mug: body plus a handle
            box(img, width, length, colour, 0.0)
            hx = int(cx + 0.6 * width)
            cv2.circle(img, (hx, int(cy)), max(int(width * 0.3), 1), colour, 2, cv2.LINE_AA)
        elif kind == "phone":  # dark body with a lit screen
            box(img, length, width, colour)
            box(img, length * 0.75, width * 0.7, PHONE_SCREEN)
        elif kind == "food":
            axes = (max(int(length / 2), 1), max(int(width / 2), 1))
            cv2.ellipse(img, (int(cx), int(cy)), axes, deg, 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == "notepad":  # paper with ruled lines, held flat towards the camera
            box(img, width, length, colour, 0.0)
            for k in (-0.25, 0.0, 0.25):
                y = int(cy + k * length)
                cv2.line(img, (int(cx - width / 3), y), (int(cx + width / 3), y), (90, 90, 90), 1)
        else:  # pen, toothbrush: a thin stick (the toothbrush with a white head)
            box(img, length, max(width, 2.0), colour)
            if kind == "toothbrush":
                hx = int(cx + 0.45 * length * np.cos(angle))
                hy = int(cy + 0.45 * length * np.sin(angle))
                cv2.circle(img, (hx, hy), max(int(width), 2), (255, 255, 255), -1)

    return draw
