"""The synthetic motion model: simulated subjects performing parametric actions.

A subject is a 25-joint NTU body built from its height and per-segment proportions. An action
drives a handful of targets per frame (wrist and ankle positions, pelvis offset, trunk and head
rotations) and the body follows them through two-bone inverse kinematics for arms and legs, so
bone lengths stay constant as a real skeleton's do.

Coordinates here are the body frame: metres, origin on the floor below the pelvis, axes
``(l, u, f)`` = (to the subject's left, up, the subject's forward). :mod:`xmkd.synth.render`
places the body in front of a camera and converts to NTU's Kinect v2 axes.

Some actions share one motion and differ only in the object held in the hand (cup / phone /
food; pen and notepad / phone): the skeleton barely tells them apart, the video does. That is what
makes NTU's skeleton-only accuracy stay near 80% while an RGB teacher can still separate them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Joint indices (0-based NTU order, see xmkd.skeleton.NTU_JOINTS).
SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
SHOULDER = {+1: 4, -1: 8}  # +1 = the subject's left side, -1 = right
ELBOW = {+1: 5, -1: 9}
WRIST = {+1: 6, -1: 10}
HAND = {+1: 7, -1: 11}
HIP = {+1: 12, -1: 16}
KNEE = {+1: 13, -1: 17}
ANKLE = {+1: 14, -1: 18}
FOOT = {+1: 15, -1: 19}
SPINE_SHOULDER = 20
HANDTIP = {+1: 21, -1: 23}
THUMB = {+1: 22, -1: 24}

# Object kinds an action can put in a hand (drawn by the renderer, invisible to the skeleton).
OBJECT_KINDS = ("cup", "phone", "food", "pen", "notepad", "toothbrush")


# --------------------------------------------------------------------------------------------
# Subjects
@dataclass(frozen=True)
class Subject:
    """One simulated performer (P number) with body, motion style and appearance."""

    number: int
    height: float  # metres
    proportions: np.ndarray  # (8,) multiplicative factors on segment lengths, about 1 +- 6%
    speed: float  # >1 moves faster
    amplitude: float  # scales motion excursions
    lean: float  # forward lean of the trunk, radians
    left_handed: bool
    style: np.ndarray  # (6,) personal offsets (m) of hand targets and elbow posture
    skin: tuple[int, int, int]  # BGR colours
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    hair: tuple[int, int, int]

    @property
    def dominant(self) -> int:
        """Side of the dominant hand: -1 right (l axis points left), +1 left."""
        return 1 if self.left_handed else -1


_SKIN = ((60, 90, 160), (80, 120, 190), (110, 150, 210), (140, 180, 230), (40, 60, 110))


def make_subject(number: int, seed: int) -> Subject:
    """Draw subject ``number``'s parameters deterministically from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 101, number]))
    colour = lambda lo, hi: tuple(int(v) for v in rng.integers(lo, hi, 3))  # noqa: E731
    skin = _SKIN[int(rng.integers(len(_SKIN)))]
    return Subject(
        number=number,
        height=float(rng.uniform(1.50, 1.87)),
        proportions=1.0 + rng.uniform(-0.06, 0.06, 8),
        speed=float(np.exp(rng.uniform(-0.35, 0.35))),
        amplitude=float(rng.uniform(0.75, 1.15)),
        lean=float(rng.normal(0.0, 0.05)),
        left_handed=bool(rng.random() < 0.25),
        style=rng.normal(0.0, 0.03, 6),
        skin=tuple(int(c + rng.integers(-15, 16)) for c in skin),
        shirt=colour(20, 235),
        pants=colour(15, 150),
        hair=colour(5, 90),
    )


@dataclass(frozen=True)
class Segments:
    """Segment lengths (m) of one subject, derived from height and proportions."""

    pelvis: float  # floor -> spine base
    spine_low: float  # spine base -> spine mid
    spine_high: float  # spine mid -> spine shoulder
    neck: float
    head: float
    shoulder_w: float  # half shoulder width
    upper_arm: float
    forearm: float
    hand: float  # wrist -> hand
    tip: float  # hand -> hand tip
    hip_w: float  # half hip width
    thigh: float
    shin: float
    ankle: float  # ankle height above the floor
    foot: float

    @classmethod
    def of(cls, s: Subject) -> Segments:
        h, p = s.height, s.proportions
        return cls(
            pelvis=0.53 * h * p[0] ** 0.5,
            spine_low=0.135 * h * p[1],
            spine_high=0.155 * h * p[1],
            neck=0.045 * h * p[2],
            head=0.07 * h * p[2],
            shoulder_w=0.10 * h * p[3],
            upper_arm=0.165 * h * p[4],
            forearm=0.145 * h * p[5],
            hand=0.045 * h,
            tip=0.045 * h,
            hip_w=0.045 * h * p[6],
            thigh=0.245 * h * p[7],
            shin=0.245 * h * p[7],
            ankle=0.04 * h,
            foot=0.065 * h,
        )


# --------------------------------------------------------------------------------------------
# Rotations (vectorised over frames)
def rot_pitch(a: np.ndarray) -> np.ndarray:
    """Rotation about the l axis; positive a bends up (u) towards forward (f)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2
    )


def rot_roll(a: np.ndarray) -> np.ndarray:
    """Rotation about the f axis; positive a leans up (u) towards the left (l)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([c, s, z], -1), np.stack([-s, c, z], -1), np.stack([z, z, o], -1)], -2
    )


def rot_yaw(a: np.ndarray) -> np.ndarray:
    """Rotation about the u axis; positive a turns forward (f) towards the left (l)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2
    )


def _apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(T,3,3) @ (T,3) or (3,) -> (T,3)."""
    return np.einsum("tij,tj->ti", r, np.broadcast_to(v, (r.shape[0], 3)))


def _normalize(v: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    out = v / np.maximum(n, 1e-9)
    if fallback is not None:
        out = np.where(n > 1e-6, out, fallback)
    return out


def two_bone_ik(
    root: np.ndarray, target: np.ndarray, a: float, b: float, pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Middle joint and reachable end for a two-bone chain root->mid->end (lengths a, b).

    The end is pulled back to the reachable shell when the target is too far or too close; the
    middle joint bends towards ``pole`` (a direction, per frame)."""
    d = target - root
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    dirn = _normalize(d, np.array([0.0, -1.0, 0.0]))
    dist_c = np.clip(dist, abs(a - b) + 1e-3, a + b - 1e-4)
    end = root + dirn * dist_c
    along = (a * a - b * b + dist_c**2) / (2 * dist_c)
    h = np.sqrt(np.maximum(a * a - along**2, 0.0))
    perp = pole - np.sum(pole * dirn, axis=-1, keepdims=True) * dirn
    perp = _normalize(perp, np.array([0.0, 0.0, 1.0]))
    return root + dirn * along + perp * h, end


# --------------------------------------------------------------------------------------------
# Timelines
def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def bump(p: np.ndarray, rise: float = 0.25) -> np.ndarray:
    """0 -> 1 over [0, rise], hold, 1 -> 0 over [1 - rise, 1] (p outside [0, 1] gives 0)."""
    return smoothstep(p / rise) * smoothstep((1.0 - p) / rise)


@dataclass
class Timeline:
    """Where the action sits in the clip: phase p in [0, 1] per frame, and seconds t."""

    t: np.ndarray  # (T,) seconds since the clip start
    p: np.ndarray  # (T,) action phase, clipped to [0, 1]
    active: np.ndarray  # (T,) bool, inside the action
    duration: float  # seconds


def make_timeline(
    frames: int, fps: float, base_duration: float, speed: float, rng: np.random.Generator
) -> Timeline:
    t = np.arange(frames) / fps
    clip_len = frames / fps
    duration = min(base_duration / speed * rng.uniform(0.9, 1.1), 0.92 * clip_len)
    start = rng.uniform(0.0, max(clip_len - duration, 0.0) * 0.8)
    raw = (t - start) / duration
    return Timeline(
        t=t, p=np.clip(raw, 0.0, 1.0), active=(raw >= 0) & (raw <= 1), duration=duration
    )


# --------------------------------------------------------------------------------------------
# Pose targets an action writes
@dataclass
class Pose:
    """Per-frame targets (body frame). Wrist targets are in the trunk frame (relative to the
    spine base, before trunk rotation) so a hand at the mouth stays there when the subject bends."""

    wrist: dict[int, np.ndarray]  # side -> (T,3) trunk-frame target
    elbow_pole: dict[int, np.ndarray]  # side -> (T,3) trunk-frame direction
    ankle: dict[int, np.ndarray]  # side -> (T,3) body-frame target
    pelvis: np.ndarray  # (T,3) offset of the spine base from its rest position
    pitch: np.ndarray  # (T,) trunk forward bend
    roll: np.ndarray
    yaw: np.ndarray
    head_pitch: np.ndarray  # (T,) positive looks down
    head_roll: np.ndarray
    head_yaw: np.ndarray
    objects: list[tuple[str, int]] = field(default_factory=list)  # (kind, side) held in hand


@dataclass
class Context:
    """What an action function can use: the subject, its segments, reference points in the
    trunk frame, the timeline and the clip's random generator."""

    subject: Subject
    seg: Segments
    tl: Timeline
    rng: np.random.Generator
    d: int  # dominant side
    shoulder: dict[int, np.ndarray]  # trunk-frame shoulder positions
    head: np.ndarray  # trunk-frame head centre
    chest: np.ndarray  # trunk-frame point in front of the chest

    @property
    def T(self) -> int:
        return len(self.tl.t)

    def rest_wrist(self, side: int) -> np.ndarray:
        sh = self.shoulder[side]
        reach = self.seg.upper_arm + self.seg.forearm
        return sh + np.array([side * 0.05, -0.96 * reach, 0.04])

    def blend(self, side: int, target: np.ndarray, env: np.ndarray) -> np.ndarray:
        """Wrist trajectory moving from rest to ``target`` (3,) or (T,3) with envelope ``env``."""
        rest = self.rest_wrist(side)
        return rest + env[:, None] * (np.broadcast_to(target, (self.T, 3)) - rest)

    def jitter(self, scale: float = 0.03) -> np.ndarray:
        """A per-clip random offset (3,) of a target: the same action is never done identically."""
        return self.rng.normal(0.0, scale, 3)


def rest_pose(ctx: Context) -> Pose:
    T, seg = ctx.T, ctx.seg
    t = ctx.tl.t
    # idle sway and breathing: small, smooth, subject-independent phase
    ph = ctx.rng.uniform(0, 2 * np.pi, 3)
    sway = 0.012 * np.sin(2 * np.pi * 0.35 * t + ph[0])
    wrist, pole, ankle = {}, {}, {}
    for side in (+1, -1):
        wrist[side] = np.tile(ctx.rest_wrist(side), (T, 1))
        wrist[side][:, 2] += 0.01 * np.sin(2 * np.pi * 0.3 * t + ph[1] + side)
        pole[side] = np.tile(np.array([side * 0.4, -0.3, -0.8]), (T, 1))
        ankle[side] = np.tile(np.array([side * seg.hip_w * 1.25, seg.ankle, 0.0]), (T, 1))
    z = np.zeros(T)
    return Pose(
        wrist=wrist,
        elbow_pole=pole,
        ankle=ankle,
        pelvis=np.stack([sway, z, z], -1),
        pitch=z + ctx.subject.lean,
        roll=0.01 * np.sin(2 * np.pi * 0.25 * t + ph[2]),
        yaw=z.copy(),
        head_pitch=z.copy(),
        head_roll=z.copy(),
        head_yaw=z.copy(),
    )


# --------------------------------------------------------------------------------------------
# Action motions. Each takes (ctx, pose, params) and edits pose in place. ``params`` carries the
# class-specific constants; classes sharing a motion differ only through them.
Motion = Callable[[Context, Pose, dict], None]


def _repeats(ctx: Context, lo: int, hi: int) -> int:
    return int(ctx.rng.integers(lo, hi + 1))


def hand_to_face(ctx: Context, pose: Pose, prm: dict) -> None:
    """Dominant hand to the face and held there with small back-and-forth trips (drinking,
    eating, phoning): the class-specific offsets are a few centimetres, smaller than the spread
    between subjects, so the skeleton hardly separates them."""
    d, amp = ctx.d, ctx.subject.amplitude
    off = np.array(prm["offset"]) * np.array([d, 1.0, 1.0])
    target = ctx.head + off + ctx.subject.style[:3] + ctx.jitter(0.03)
    env = bump(ctx.tl.p, 0.22)
    trips = _repeats(ctx, 1, 3)
    hold = smoothstep((ctx.tl.p - 0.2) / 0.1) * smoothstep((0.8 - ctx.tl.p) / 0.1)
    away = 0.5 - 0.5 * np.cos(2 * np.pi * trips * np.clip((ctx.tl.p - 0.2) / 0.6, 0, 1))
    trip = hold * away * 0.07 * amp
    w = ctx.blend(d, target, env)
    w[:, 2] += trip
    w[:, 1] -= 0.6 * trip
    pose.wrist[d] = w
    pose.elbow_pole[d] = np.tile(np.array([d * 0.7, -0.6, 0.1]), (ctx.T, 1))
    pose.head_pitch += prm.get("head_pitch", 0.0) * env
    pose.head_roll += d * prm.get("head_roll", 0.0) * env
    # the other hand drifts a little forward sometimes
    if ctx.rng.random() < 0.4:
        other = -d
        pose.wrist[other] = ctx.blend(other, ctx.chest + ctx.jitter(0.05), 0.5 * env)


def hands_in_front(ctx: Context, pose: Pose, prm: dict) -> None:
    """Both hands in front of the lower chest, the dominant one making small quick movements,
    head lowered (writing on a notepad / typing on a phone)."""
    d, amp = ctx.d, ctx.subject.amplitude
    env = bump(ctx.tl.p, 0.18)
    base = ctx.chest + np.array([0.0, -0.12, 0.0]) + ctx.subject.style[3:] + ctx.jitter(0.03)
    freq = ctx.rng.uniform(2.0, 4.0)
    ph = ctx.rng.uniform(0, 2 * np.pi, 2)
    t = ctx.tl.t
    wiggle = np.stack(
        [
            0.018 * amp * np.sin(2 * np.pi * freq * t + ph[0]),
            0.012 * amp * np.sin(2 * np.pi * freq * 1.3 * t + ph[1]),
            np.zeros_like(t),
        ],
        -1,
    )
    drift = prm.get("drift", 0.0) * (ctx.tl.p - 0.5)[:, None] * np.array([-d, 0.0, 0.0])
    pose.wrist[d] = ctx.blend(d, base + np.array([d * 0.05, 0, 0]), env) + (
        env[:, None] * (wiggle + drift)
    )
    pose.wrist[-d] = ctx.blend(-d, base + np.array([-d * 0.09, -0.02, -0.02]), env)
    for side in (+1, -1):
        pose.elbow_pole[side] = np.tile(np.array([side * 0.6, -0.7, -0.2]), (ctx.T, 1))
    pose.head_pitch += 0.35 * env


def wave(ctx: Context, pose: Pose, prm: dict) -> None:
    d, amp = ctx.d, ctx.subject.amplitude
    env = bump(ctx.tl.p, 0.2)
    sides = (d, -d) if prm.get("both") else (d,)
    cycles = ctx.rng.uniform(2.0, 4.0)
    osc = np.sin(2 * np.pi * cycles * ctx.tl.p)
    for side in sides:
        up = ctx.shoulder[side] + np.array([side * 0.25, 0.33, 0.12]) + ctx.jitter(0.04)
        w = ctx.blend(side, up, env)
        w[:, 0] += env * osc * 0.12 * amp
        pose.wrist[side] = w
        pose.elbow_pole[side] = np.tile(np.array([side * 1.0, -0.3, 0.0]), (ctx.T, 1))


def kick(ctx: Context, pose: Pose, prm: dict) -> None:
    d, seg, amp = ctx.d, ctx.seg, ctx.subject.amplitude
    env = bump(ctx.tl.p, 0.35)
    target = np.array([d * seg.hip_w, seg.ankle + 0.3 * amp, 0.55 * amp]) + ctx.jitter(0.05)
    pose.ankle[d] = pose.ankle[d] + env[:, None] * (target - pose.ankle[d])
    pose.pitch -= 0.12 * env
    pose.pelvis[:, 0] += -d * 0.04 * env  # weight shifts to the standing leg
    for side in (+1, -1):
        pose.wrist[side] = ctx.blend(side, ctx.rest_wrist(side) + [side * 0.15, 0.1, 0.0], env)


def sit_down(ctx: Context, pose: Pose, prm: dict) -> None:
    seg, amp = ctx.seg, ctx.subject.amplitude
    down = smoothstep(ctx.tl.p / 0.6)  # sits and stays seated
    drop = (0.32 + 0.08 * amp) * seg.pelvis / 0.9 * ctx.rng.uniform(0.85, 1.1)
    pose.pelvis[:, 1] -= drop * down
    pose.pelvis[:, 2] -= 0.22 * down
    lean = np.sin(np.pi * np.clip(ctx.tl.p / 0.6, 0, 1))
    pose.pitch += 0.45 * lean + 0.1 * down
    for side in (+1, -1):
        pose.wrist[side] = ctx.blend(side, ctx.chest + [side * 0.2, -0.2, 0.05], 0.8 * lean)


def clap(ctx: Context, pose: Pose, prm: dict) -> None:
    amp = ctx.subject.amplitude
    env = bump(ctx.tl.p, 0.2)
    claps = ctx.rng.uniform(3.0, 6.0)
    gap = 0.5 + 0.5 * np.cos(2 * np.pi * claps * ctx.tl.p)  # 1 apart, 0 together
    centre = ctx.chest + ctx.jitter(0.04)
    for side in (+1, -1):
        target = centre + np.array([side * 0.03, 0, 0])
        w = ctx.blend(side, target, env)
        w[:, 0] += side * env * gap * 0.16 * amp
        pose.wrist[side] = w
        pose.elbow_pole[side] = np.tile(np.array([side * 0.8, -0.6, 0.0]), (ctx.T, 1))


def bow(ctx: Context, pose: Pose, prm: dict) -> None:
    env = bump(ctx.tl.p, 0.35)
    pose.pitch += (0.55 + 0.35 * ctx.subject.amplitude) * env
    pose.pelvis[:, 2] -= 0.08 * env
    pose.head_pitch += 0.2 * env


def jump(ctx: Context, pose: Pose, prm: dict) -> None:
    amp = ctx.subject.amplitude
    jumps = _repeats(ctx, 1, 2)
    q = (ctx.tl.p * jumps) % 1.0
    crouch = np.where(ctx.tl.active, np.sin(np.pi * q) ** 8, 0.0)
    air = np.where(ctx.tl.active & (q > 0.35) & (q < 0.65), np.sin(np.pi * (q - 0.35) / 0.3), 0.0)
    height = 0.2 * amp * air
    pose.pelvis[:, 1] += height - 0.12 * (1 - air) * np.sin(np.pi * q) * ctx.tl.active
    for side in (+1, -1):
        pose.ankle[side][:, 1] += height
        up = ctx.shoulder[side] + np.array([side * 0.15, 0.25, 0.1])
        pose.wrist[side] = ctx.blend(side, up, air + 0.3 * crouch)
    pose.pitch += 0.25 * (1 - air) * np.sin(np.pi * q) * ctx.tl.active


def punch(ctx: Context, pose: Pose, prm: dict) -> None:
    d, amp = ctx.d, ctx.subject.amplitude
    env = bump(ctx.tl.p, 0.15)
    n = _repeats(ctx, 1, 3)
    strike = np.clip(np.sin(np.pi * n * ctx.tl.p), 0, 1) ** 2
    guard = ctx.chest + np.array([0, 0.12, -0.05])
    reach = ctx.shoulder[d] + np.array([-d * 0.08, -0.02, 0.5 * amp]) + ctx.jitter(0.04)
    g = ctx.blend(d, guard + [d * 0.08, 0, 0], env)
    pose.wrist[d] = g + (strike * env)[:, None] * (reach - g)
    pose.wrist[-d] = ctx.blend(-d, guard + [-d * 0.1, 0, 0], env)
    pose.yaw += -d * 0.15 * strike * env


def point(ctx: Context, pose: Pose, prm: dict) -> None:
    d = ctx.d
    env = bump(ctx.tl.p, 0.25)
    aim = ctx.shoulder[d] + np.array([d * 0.25, 0.15, 0.5]) + ctx.jitter(0.08)
    pose.wrist[d] = ctx.blend(d, aim, env)
    pose.elbow_pole[d] = np.tile(np.array([d * 0.8, -0.6, 0.0]), (ctx.T, 1))


def throw(ctx: Context, pose: Pose, prm: dict) -> None:
    d, amp = ctx.d, ctx.subject.amplitude
    p = ctx.tl.p
    back = ctx.shoulder[d] + np.array([d * 0.2, 0.2, -0.25])
    front = ctx.shoulder[d] + np.array([-d * 0.1, 0.05, 0.55 * amp])
    wind = smoothstep(p / 0.45) * (1 - smoothstep((p - 0.45) / 0.15))
    release = smoothstep((p - 0.45) / 0.15) * (1 - smoothstep((p - 0.8) / 0.2))
    w = ctx.blend(d, back, wind)
    pose.wrist[d] = w + release[:, None] * (front - ctx.rest_wrist(d))
    pose.yaw += d * 0.3 * wind - d * 0.3 * release
    pose.pitch += 0.2 * release


def pick_up(ctx: Context, pose: Pose, prm: dict) -> None:
    seg = ctx.seg
    env = bump(ctx.tl.p, 0.3)
    pose.pitch += 1.0 * env
    pose.pelvis[:, 1] -= 0.18 * env * seg.pelvis / 0.9
    pose.pelvis[:, 2] -= 0.12 * env
    d = ctx.d
    low = ctx.shoulder[d] + np.array([0.0, -(seg.upper_arm + seg.forearm) * 0.9, 0.25])
    pose.wrist[d] = ctx.blend(d, low, env)


def salute(ctx: Context, pose: Pose, prm: dict) -> None:
    d = ctx.d
    env = bump(ctx.tl.p, 0.25)
    brow = ctx.head + np.array([d * 0.07, 0.04, 0.09]) + ctx.jitter(0.02)
    pose.wrist[d] = ctx.blend(d, brow + [d * 0.06, -0.04, 0.0], env)
    pose.elbow_pole[d] = np.tile(np.array([d * 1.0, 0.0, 0.0]), (ctx.T, 1))


def cross_arms(ctx: Context, pose: Pose, prm: dict) -> None:
    env = bump(ctx.tl.p, 0.25)
    for side in (+1, -1):
        other_elbow = ctx.shoulder[-side] + np.array([0, -0.22, 0.14])
        pose.wrist[side] = ctx.blend(side, other_elbow + ctx.jitter(0.02), env)
        pose.elbow_pole[side] = np.tile(np.array([side * 0.6, -0.5, 0.6]), (ctx.T, 1))


def hands_to_head(ctx: Context, pose: Pose, prm: dict) -> None:
    env = bump(ctx.tl.p, 0.25)
    sides = (+1, -1) if prm.get("both", True) else (ctx.d,)
    for side in sides:
        spot = ctx.head + np.array([side * 0.1, 0.05, 0.0]) + ctx.jitter(0.02)
        pose.wrist[side] = ctx.blend(side, spot, env)
        pose.elbow_pole[side] = np.tile(np.array([side * 1.0, -0.1, 0.2]), (ctx.T, 1))
    pose.head_pitch += 0.2 * env


def stretch_up(ctx: Context, pose: Pose, prm: dict) -> None:
    env = bump(ctx.tl.p, 0.3)
    for side in (+1, -1):
        top = ctx.shoulder[side] + np.array([side * 0.1, 0.6, 0.05]) + ctx.jitter(0.04)
        pose.wrist[side] = ctx.blend(side, top, env)
        pose.elbow_pole[side] = np.tile(np.array([side * 1.0, 0.0, 0.0]), (ctx.T, 1))
    pose.pitch -= 0.1 * env


def head_motion(ctx: Context, pose: Pose, prm: dict) -> None:
    env = bump(ctx.tl.p, 0.15)
    osc = np.sin(2 * np.pi * ctx.rng.uniform(2.0, 4.0) * ctx.tl.p)
    amount = 0.35 * ctx.subject.amplitude * env * osc
    if prm.get("axis") == "yaw":
        pose.head_yaw += amount
    else:
        pose.head_pitch += amount


def march(ctx: Context, pose: Pose, prm: dict) -> None:
    seg, amp = ctx.seg, ctx.subject.amplitude
    env = bump(ctx.tl.p, 0.1)
    steps = ctx.rng.uniform(2.0, 4.0)
    ph = 2 * np.pi * steps * ctx.tl.p
    for side in (+1, -1):
        lift = np.clip(np.sin(ph + (0 if side > 0 else np.pi)), 0, 1) * env
        pose.ankle[side][:, 1] += 0.25 * amp * lift
        pose.ankle[side][:, 2] += 0.15 * lift
        pose.wrist[side][:, 2] += 0.15 * np.sin(ph + (np.pi if side > 0 else 0)) * env
    pose.pelvis[:, 1] += 0.02 * np.sin(2 * ph) * env - 0.0 * seg.pelvis


def rub_hands(ctx: Context, pose: Pose, prm: dict) -> None:
    env = bump(ctx.tl.p, 0.2)
    osc = np.sin(2 * np.pi * ctx.rng.uniform(3.0, 6.0) * ctx.tl.p)
    centre = ctx.chest + np.array([0, -0.08, 0]) + ctx.jitter(0.03)
    for side in (+1, -1):
        w = ctx.blend(side, centre + [side * 0.03, 0, 0], env)
        w[:, 2] += side * 0.04 * osc * env
        pose.wrist[side] = w


def selfie(ctx: Context, pose: Pose, prm: dict) -> None:
    d = ctx.d
    env = bump(ctx.tl.p, 0.25)
    out = ctx.shoulder[d] + np.array([d * 0.1, 0.25, 0.45]) + ctx.jitter(0.04)
    pose.wrist[d] = ctx.blend(d, out, env)
    pose.head_pitch -= 0.1 * env


def gesture(ctx: Context, pose: Pose, prm: dict) -> None:
    """A procedurally defined class (beyond the named library): reach one or both hands to a
    class-specific point and oscillate along a class-specific axis, optionally bending."""
    env = bump(ctx.tl.p, 0.25)
    osc = np.sin(2 * np.pi * prm["cycles"] * ctx.tl.p)
    for side in (ctx.d, -ctx.d)[: prm["hands"]]:
        sign = np.array([side * -ctx.d, 1.0, 1.0])  # mirror the target for the other hand
        target = ctx.shoulder[side] + np.array(prm["target"]) * sign + ctx.jitter(0.04)
        w = ctx.blend(side, target, env)
        w += (env * osc)[:, None] * np.array(prm["axis"]) * sign * ctx.subject.amplitude
        pose.wrist[side] = w
    pose.pitch += prm["bend"] * env


@dataclass(frozen=True)
class ActionSpec:
    """One action class: a name, the motion, its constants, what is held, and a duration."""

    name: str
    motion: Motion
    params: dict = field(default_factory=dict)
    objects: tuple[tuple[str, str], ...] = ()  # (kind, "dominant" | "other")
    duration: float = 2.0  # seconds at speed 1
    group: str = ""  # classes sharing a group share the motion: skeleton-ambiguous


# The named library, in class order. The first ten are the default preset, the first six the
# tiny one: both include skeleton-ambiguous groups ("face": cup / phone / food at the face;
# "front": pen+notepad / phone in front of the chest).
ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "drink water", hand_to_face, {"offset": (0.0, -0.075, 0.10), "head_pitch": -0.08},
        (("cup", "dominant"),), 2.2, "face",
    ),
    ActionSpec(
        "make a phone call", hand_to_face, {"offset": (0.05, -0.04, 0.06), "head_roll": 0.06},
        (("phone", "dominant"),), 2.2, "face",
    ),
    ActionSpec("wave hand", wave, {}, (), 2.0),
    ActionSpec("kick something", kick, {}, (), 1.6),
    ActionSpec(
        "write on a notepad", hands_in_front, {"drift": 0.05},
        (("pen", "dominant"), ("notepad", "other")), 2.2, "front",
    ),
    ActionSpec("sit down", sit_down, {}, (), 2.0),
    ActionSpec(
        "eat a snack", hand_to_face, {"offset": (0.01, -0.08, 0.09)},
        (("food", "dominant"),), 2.2, "face",
    ),
    ActionSpec(
        "type on a phone", hands_in_front, {"drift": 0.0}, (("phone", "dominant"),), 2.2, "front"
    ),
    ActionSpec("clapping", clap, {}, (), 2.0),
    ActionSpec("bow", bow, {}, (), 2.2),
    ActionSpec("jump up", jump, {}, (), 1.8),
    ActionSpec("punch", punch, {}, (), 1.8),
    ActionSpec(
        "brush teeth", hand_to_face, {"offset": (0.0, -0.07, 0.10)},
        (("toothbrush", "dominant"),), 2.2, "face",
    ),
    ActionSpec("point to something", point, {}, (), 2.0),
    ActionSpec("throw", throw, {}, (), 1.6),
    ActionSpec("pick up", pick_up, {}, (), 2.2),
    ActionSpec("salute", salute, {}, (), 1.8),
    ActionSpec("cross arms", cross_arms, {}, (), 2.0),
    ActionSpec("hands on head", hands_to_head, {"both": True}, (), 2.0),
    ActionSpec("stretch arms up", stretch_up, {}, (), 2.0),
    ActionSpec("nod head", head_motion, {"axis": "pitch"}, (), 1.8),
    ActionSpec("shake head", head_motion, {"axis": "yaw"}, (), 1.8),
    ActionSpec("march in place", march, {}, (), 2.2),
    ActionSpec("rub hands", rub_hands, {}, (), 2.0),
    ActionSpec("take a selfie", selfie, {}, (("phone", "dominant"),), 2.0),
    ActionSpec("wave both hands", wave, {"both": True}, (), 2.0),
    ActionSpec("headache", hands_to_head, {"both": False}, (), 2.0),
)  # fmt: skip

MAX_CLASSES = 60


def action_library(num_classes: int, seed: int = 0) -> list[ActionSpec]:
    """The first ``num_classes`` classes: the named library, then procedural gestures (each
    with constants drawn from ``seed`` and its class number) up to ``MAX_CLASSES``."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"the synthetic data has 1..{MAX_CLASSES} classes, got {num_classes}")
    specs = list(ACTIONS[:num_classes])
    for k in range(len(specs), num_classes):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 202, k]))
        prm = {
            "target": tuple(rng.uniform([-0.3, -0.3, 0.1], [0.3, 0.5, 0.5])),
            "axis": tuple(rng.uniform(-0.12, 0.12, 3)),
            "cycles": float(rng.uniform(1.0, 4.0)),
            "hands": int(rng.integers(1, 3)),
            "bend": float(rng.choice([0.0, 0.0, 0.3, -0.1])),
        }
        specs.append(ActionSpec(f"gesture {k + 1}", gesture, prm, (), float(rng.uniform(1.6, 2.2))))
    return specs


# --------------------------------------------------------------------------------------------
# Assembling the body
@dataclass
class Performance:
    """The noiseless motion of one clip in the body frame."""

    joints: np.ndarray  # (T, 25, 3) metres, body frame (l, u, f)
    objects: list[tuple[str, int]]  # (kind, side) held
    hand_closed: np.ndarray  # (T, 2) bool: left, right hand closed around an object
    trunk_pitch: np.ndarray  # (T,)
    trunk_roll: np.ndarray  # (T,)


def perform(
    spec: ActionSpec,
    subject: Subject,
    frames: int,
    fps: float,
    rng: np.random.Generator,
) -> Performance:
    """Animate ``subject`` performing ``spec`` for ``frames`` frames at ``fps``."""
    seg = Segments.of(subject)
    tl = make_timeline(frames, fps, spec.duration, subject.speed, rng)
    T = frames
    # Reference points in the trunk frame (origin: spine base).
    ss = np.array([0.0, seg.spine_low + seg.spine_high, 0.0])
    shoulder = {s: ss + np.array([s * seg.shoulder_w, -0.02, -0.01]) for s in (+1, -1)}
    head = ss + np.array([0.0, seg.neck + seg.head, 0.02])
    chest = ss + np.array([0.0, -0.12, 0.30])
    ctx = Context(subject, seg, tl, rng, subject.dominant, shoulder, head, chest)
    pose = rest_pose(ctx)
    spec.motion(ctx, pose, spec.params)
    for kind, hand in spec.objects:
        pose.objects.append((kind, ctx.d if hand == "dominant" else -ctx.d))

    joints = np.zeros((T, 25, 3))
    pelvis = np.array([0.0, seg.pelvis, 0.0]) + pose.pelvis
    r_trunk = rot_yaw(pose.yaw) @ rot_pitch(pose.pitch) @ rot_roll(pose.roll)
    r_half = rot_yaw(0.5 * pose.yaw) @ rot_pitch(0.5 * pose.pitch) @ rot_roll(0.5 * pose.roll)
    r_head = (
        r_trunk @ rot_yaw(pose.head_yaw) @ rot_pitch(pose.head_pitch) @ rot_roll(pose.head_roll)
    )

    def trunk(v: np.ndarray) -> np.ndarray:
        return pelvis + _apply(r_trunk, v)

    joints[:, SPINE_BASE] = pelvis
    joints[:, SPINE_MID] = pelvis + _apply(r_half, np.array([0.0, seg.spine_low, -0.01]))
    joints[:, SPINE_SHOULDER] = joints[:, SPINE_MID] + _apply(
        r_trunk, np.array([0.0, seg.spine_high, 0.0])
    )
    joints[:, NECK] = joints[:, SPINE_SHOULDER] + _apply(r_trunk, np.array([0.0, seg.neck, 0.0]))
    joints[:, HEAD] = joints[:, NECK] + _apply(r_head, np.array([0.0, seg.head, 0.02]))
    # Arms: IK in the trunk frame, then into the body frame.
    for side in (+1, -1):
        sh_t = np.broadcast_to(shoulder[side], (T, 3))
        style_out = 0.3 * subject.style[5] * side
        pole = pose.elbow_pole[side] + np.array([style_out, 0.0, 0.0])
        elbow, wrist = two_bone_ik(sh_t, pose.wrist[side], seg.upper_arm, seg.forearm, pole)
        fore = _normalize(wrist - elbow)
        hand_dir = fore  # the hand continues the forearm (wrist flexion is not modelled)
        hand = wrist + seg.hand * hand_dir
        tip = hand + seg.tip * hand_dir
        across = _normalize(np.cross(hand_dir, np.array([0.0, 1.0, 0.0])), np.array([1.0, 0, 0]))
        thumb = hand + 0.4 * seg.tip * hand_dir - side * 0.035 * across
        for idx, pts in (
            (SHOULDER[side], sh_t),
            (ELBOW[side], elbow),
            (WRIST[side], wrist),
            (HAND[side], hand),
            (HANDTIP[side], tip),
            (THUMB[side], thumb),
        ):
            joints[:, idx] = trunk(pts)
    # Legs: hips follow the pelvis (yaw only); IK towards the ankle targets.
    r_pelvis = rot_yaw(pose.yaw * 0.3)
    for side in (+1, -1):
        hip = pelvis + _apply(r_pelvis, np.array([side * seg.hip_w, -0.05 * seg.pelvis, 0.0]))
        knee_pole = np.broadcast_to(np.array([side * 0.15, 0.0, 1.0]), (T, 3))
        knee, ankle = two_bone_ik(hip, pose.ankle[side], seg.thigh, seg.shin, knee_pole)
        foot = ankle + _apply(r_pelvis, np.array([side * 0.01, -0.5 * seg.ankle, seg.foot]))
        joints[:, HIP[side]] = hip
        joints[:, KNEE[side]] = knee
        joints[:, ANKLE[side]] = ankle
        joints[:, FOOT[side]] = foot

    closed = np.zeros((T, 2), dtype=bool)
    for _, side in pose.objects:
        closed[:, 0 if side > 0 else 1] = True
    return Performance(joints, list(pose.objects), closed, pose.pitch, pose.roll)
