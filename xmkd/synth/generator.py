"""The synthetic paired-data generator: clips in the recordings layout, deterministic per seed.

Every clip ``S001 C<view> P<subject> R<rep> A<class+1>`` is generated from its own random stream
(seeded by the seed and the clip's name fields), so the output does not depend on the number of
worker processes or on which clips are generated. Per clip:

1. the subject performs the action (:func:`xmkd.synth.motion.perform`), clean joints;
2. the body is placed in front of the view's camera (:mod:`xmkd.synth.render`);
3. the RGB frames are rendered from the clean joints (so pixels and joints are the same
   instants), with an occluding box now and then;
4. the skeleton gets Kinect-like sensor errors: jitter and slow drift, "inferred" joints
   (trackingState 1) with larger errors where the body hides itself in side views or a box
   covers it, feet inferred now and then, stretches of lost tracking (frames with no body), and
   rarely a spurious still "body" (furniture detected as a person, as in NTU);
5. files: ``.skeleton`` (xmkd.ntu.write_skeleton), MJPEG AVI, timestamps CSV, optionally flow.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmkd import recordings as rec
from xmkd.errors import XmkdError
from xmkd.synth import motion as M
from xmkd.synth import render as R

SETUP = 1
#: NTU-60 cross-subject training subjects: the synthetic subjects are numbered so that the
#: x-sub rule and the paper's Teacher-Train / Student-Train split (xmkd.ntu.splits) apply.
XSUB60_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
BODY_ID_BASE = 72057594037927936  # Kinect v2 tracking ids look like 0x0100000000000000 + n
FRAME_USEC_JITTER = 300


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. The defaults are the ``default`` preset (10 classes, 40 subjects, 3
    views, 2 repetitions: 2400 clips of 24 frames at 10 fps, RGB 64x64).

    10 fps rather than a camera's 30: what matters to a video teacher is the motion between
    frames in pixels, and at 64x64 a hand moves about a pixel per frame at 20 fps, about as much
    as the pixel noise; at 10 fps the RGB-difference teacher learned faster (measured), and the
    clips cost half as much to render and to read."""

    classes: int = 10
    subjects: tuple[int, ...] = tuple(range(1, 41))
    views: tuple[int, ...] = (1, 2, 3)
    repetitions: int = 2
    frames: int = 24
    fps: float = 10.0
    width: int = 64
    height: int = 64
    flow: bool = False  # also write optical flow (rawframes JPEGs) per clip
    flow_preset: str = "fast"  # DIS preset (capture.flow): ultrafast | fast | medium
    seed: int = 0
    # sensor errors of the skeleton
    joint_noise: float = 0.01  # metres, std of white jitter on tracked trunk joints
    drift_noise: float = 0.01  # metres, std of slow per-joint drift
    lost_tracking: float = 0.12  # probability of a clip having a stretch with no body
    spurious_body: float = 0.05  # probability of a still extra "body"
    occluder: float = 0.15  # probability of an occluding box in the video
    rooms: int = 24  # distinct backgrounds, shared by clips as NTU's setups share rooms; 0: new
    # room per clip
    pixel_noise: float = 6.0  # grey levels, std of the per-pixel noise

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= M.MAX_CLASSES:
            raise XmkdError(f"--classes must be 1..{M.MAX_CLASSES}, got {self.classes}")
        if not self.subjects or any(not 1 <= s <= 999 for s in self.subjects):
            raise XmkdError("subjects must be numbers 1..999")
        if not self.views or any(c not in R.VIEW_YAW_DEG for c in self.views):
            raise XmkdError(f"views must be among {sorted(R.VIEW_YAW_DEG)}")
        if self.repetitions < 1 or self.frames < 8 or self.fps <= 0:
            raise XmkdError("repetitions >= 1, frames >= 8 and fps > 0 are required")
        if min(self.width, self.height) < 16:
            raise XmkdError("the RGB frames must be at least 16x16 pixels")

    @property
    def num_clips(self) -> int:
        return len(self.subjects) * len(self.views) * self.repetitions * self.classes

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["subjects"] = list(self.subjects)
        d["views"] = list(self.views)
        return d


def tiny_subjects(per_split: int = 2) -> tuple[int, ...]:
    """The first ``per_split`` subjects of Teacher-Train, Student-Train and Test (x-sub 60)."""
    from xmkd.ntu.splits import protocol_split

    picked: dict[str, list[int]] = {"teacher_train": [], "student_train": [], "test": []}
    for p in range(1, 41):
        split = protocol_split(f"S001C001P{p:03d}R001A001")
        if split in picked and len(picked[split]) < per_split:
            picked[split].append(p)
    return tuple(sorted(p for ps in picked.values() for p in ps))


def preset(name: str, **overrides: Any) -> SynthConfig:
    """``tiny`` (tests: 6 classes, 6 subjects, 2 views, 1 rep, 32 frames, with flow) or
    ``default``; ``overrides`` replace fields (None values are ignored)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name == "default":
        return SynthConfig(**overrides)
    if name == "tiny":
        base = dict(
            classes=6,
            subjects=tiny_subjects(),
            views=(1, 2),
            repetitions=1,
            frames=32,
            fps=20.0,
            flow=True,
            flow_preset="ultrafast",
        )
        base.update(overrides)
        return SynthConfig(**base)
    raise XmkdError(f"unknown synthetic preset {name!r}; choose one of {PRESETS}")


PRESETS = ("tiny", "default")


@dataclass(frozen=True)
class ClipJob:
    subject: int
    view: int
    rep: int
    action: int  # 1-based

    @property
    def name(self) -> str:
        return f"S{SETUP:03d}C{self.view:03d}P{self.subject:03d}R{self.rep:03d}A{self.action:03d}"


def plan(cfg: SynthConfig) -> list[ClipJob]:
    return [
        ClipJob(p, c, r, a)
        for p in cfg.subjects
        for c in cfg.views
        for r in range(1, cfg.repetitions + 1)
        for a in range(1, cfg.classes + 1)
    ]


# --------------------------------------------------------------------------------------------
# One clip
@dataclass
class ClipData:
    """Everything generated for one clip, before it is written."""

    name: str
    skeleton: Any  # xmkd.ntu.SkeletonSequence
    frames_bgr: np.ndarray  # (T, H, W, 3) uint8
    device_usec: np.ndarray
    host_nsec: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, width: int):
    """Temporally correlated noise along axis 0 (moving average of white noise, std ``sigma``)."""
    raw = rng.normal(0.0, 1.0, (shape[0] + width - 1, *shape[1:]))
    c = np.cumsum(raw, axis=0)
    c = np.concatenate([np.zeros((1, *shape[1:])), c], axis=0)
    return (c[width:] - c[:-width]) * (sigma / np.sqrt(width))


# Per-joint scale of the white jitter: trunk 1, limbs 1.5, hands and tips 2.5 (Kinect v2's
# hand tips and thumbs are its noisiest joints).
_JITTER_SCALE = np.ones(25)
_JITTER_SCALE[[5, 6, 9, 10, 13, 14, 17, 18]] = 1.5
_JITTER_SCALE[[7, 11, 15, 19]] = 2.0
_JITTER_SCALE[[21, 22, 23, 24]] = 3.0
_ARM = {side: [M.ELBOW[side], M.WRIST[side], M.HAND[side], M.HANDTIP[side], M.THUMB[side]]
        for side in (+1, -1)}  # fmt: skip
# Kinect v2 leaves these joints' orientation at 0 0 0 0 (leaves of its hierarchy).
_LEAVES = (M.HEAD, M.FOOT[1], M.FOOT[-1], 21, 22, 23, 24)
_PARENT = np.array([0, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1,
                    7, 7, 11, 11])  # fmt: skip


def _orientations(joints: np.ndarray) -> np.ndarray:
    """Per-joint quaternion wxyz (T, 25, 4) rotating +y onto the bone from the parent (Kinect v2
    joint orientations point y along the bone); leaves get 0 0 0 0 as in NTU files."""
    bone = joints - joints[:, _PARENT]
    bone[:, 0] = joints[:, 1] - joints[:, 0]  # spine base: along the spine
    v = bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
    # shortest rotation from (0,1,0) to v: q = (1 + v.y, v x y-axis ...) normalised
    w = 1.0 + v[..., 1]
    q = np.stack([w, v[..., 2], np.zeros_like(w), -v[..., 0]], -1)
    q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-9)
    q[:, list(_LEAVES)] = 0.0
    return q


def make_clip(
    job: ClipJob,
    cfg: SynthConfig,
    specs: list[M.ActionSpec],
    should_stop: Callable[[], bool] | None = None,
) -> ClipData:
    """Generate one clip (no file written). ``should_stop`` is asked between rendered frames;
    when it says True, `xmkd.synth.render.RenderCancelled` is raised."""
    from xmkd.ntu import SkeletonSequence

    ss = np.random.SeedSequence([cfg.seed, 303, job.subject, job.view, job.rep, job.action])
    rng_motion, rng_place, rng_render, rng_sensor, rng_time = (
        np.random.default_rng(s) for s in ss.spawn(5)
    )
    T = cfg.frames
    subject = M.make_subject(job.subject, cfg.seed)
    spec = specs[job.action - 1]
    perf = M.perform(spec, subject, T, cfg.fps, rng_motion)

    cam = R.Pinhole.for_size(cfg.width, cfg.height)
    pl = R.make_placement(job.view, rng_place)
    clean = R.body_to_camera(perf.joints, pl)  # (T, 25, 3)
    hand_dirs = {}
    for side in (+1, -1):
        d = clean[:, M.HANDTIP[side]] - clean[:, M.WRIST[side]]
        hand_dirs[side] = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    occluders = R.make_occluders(rng_render, T, cam, cfg.occluder)
    room_rng = None
    if cfg.rooms > 0:  # a subject seen by one camera is always in the same room
        room = (job.subject * 31 + job.view * 7) % cfg.rooms
        room_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 404, room]))
    frames = R.render_clip(
        clean,
        hand_dirs,
        perf.objects,
        subject,
        cam,
        pl,
        occluders,
        rng_render,
        cfg.pixel_noise,
        room_rng,
        should_stop,
    )

    # ---- sensor errors on the skeleton
    rng = rng_sensor
    tracking = np.full((T, 25), 2.0)
    uv_clean = cam.project(clean)
    for occ in occluders:
        for t in range(T):
            tracking[t, occ.covers(uv_clean[t], t)] = 1.0
    # self-occlusion: in side views the arm away from the camera hides behind the torso
    torso_z = clean[:, M.SPINE_MID, 2]
    for side in (+1, -1):
        for j in _ARM[side]:
            tracking[clean[:, j, 2] > torso_z + 0.06, j] = 1.0
    feet = [M.FOOT[1], M.FOOT[-1], M.ANKLE[1], M.ANKLE[-1]]
    tracking[:, feet] = np.where(rng.random((T, 4)) < 0.1, 1.0, tracking[:, feet])
    inferred = tracking == 1.0
    noisy = clean + rng.normal(0.0, 1.0, clean.shape) * (cfg.joint_noise * _JITTER_SCALE)[:, None]
    noisy += _smooth_noise(rng, clean.shape, cfg.drift_noise, 7)
    # inferred joints: guessed, so off by several centimetres and lagging
    noisy[inferred] += rng.normal(0.0, 0.04, (int(inferred.sum()), 3))

    present = np.ones(T, dtype=bool)
    if rng.random() < cfg.lost_tracking:
        length = int(rng.integers(2, max(3, T // 6)))
        start = int(rng.integers(0, T - length))
        present[start : start + length] = False

    body_id = BODY_ID_BASE + int(rng.integers(1000, 9000))
    seq_rows = []  # per frame: list of (id, info (9,), joints (25, 12))
    lean_x = np.clip(np.sin(perf.trunk_roll) * 2.0, -1, 1)
    lean_y = np.clip(np.sin(perf.trunk_pitch) * 2.0, -1, 1)
    full = _full_joints(noisy, tracking, cam)
    for t in range(T):
        rows = []
        if present[t]:
            hl, hr = (
                (3.0 if perf.hand_closed[t, 0] else 2.0),
                (3.0 if perf.hand_closed[t, 1] else 2.0),
            )
            info = np.array([0, 1, hl, 1, hr, 0, lean_x[t], lean_y[t], 2], dtype=np.float64)
            rows.append((body_id, info, full[t]))
        seq_rows.append(rows)
    spurious = rng.random() < cfg.spurious_body
    if spurious:
        _add_spurious_body(seq_rows, rng, clean, cam, body_id)

    counts = np.array([len(r) for r in seq_rows], dtype=np.int64)
    flat = [b for r in seq_rows for b in r]
    if flat:
        ids = np.array([b[0] for b in flat], dtype=np.uint64)
        info = np.stack([b[1] for b in flat])
        joints = np.stack([b[2] for b in flat])
    else:
        ids, info, joints = np.zeros(0, np.uint64), np.zeros((0, 9)), np.zeros((0, 25, 12))
    # rounding keeps the text files compact (NTU files carry about 7 significant digits)
    info = np.round(info, 7)
    seq = SkeletonSequence.from_arrays(counts, ids, joints, info)

    start_usec = int(rng_time.integers(10_000_000, 4_000_000_000))
    period = 1e6 / cfg.fps
    device = start_usec + np.round(np.arange(T) * period).astype(np.int64)
    device += rng_time.integers(-FRAME_USEC_JITTER, FRAME_USEC_JITTER + 1, T)
    host_offset = int(rng_time.integers(1_700_000_000, 1_800_000_000)) * 1_000_000_000
    host = host_offset + device * 1000 + rng_time.integers(2_000_000, 9_000_000, T)
    meta = {
        "subject": job.subject,
        "camera": job.view,
        "left_handed": subject.left_handed,
        "lost_frames": int((~present).sum()),
        "spurious_body": bool(spurious),
        "occluded": bool(occluders),
    }
    return ClipData(job.name, seq, frames, device, host, meta)


def _full_joints(xyz: np.ndarray, tracking: np.ndarray, cam: R.Pinhole) -> np.ndarray:
    """(T, 25, 3) metres -> (T, 25, 12) NTU joint rows: x y z, depth px, colour px (the paired
    video's pixels, mirrored like NTU's), orientation wxyz, trackingState."""
    T = xyz.shape[0]
    out = np.zeros((T, 25, 12))
    out[..., 0:3] = np.round(xyz, 6)
    out[..., 3:5] = np.round(R.depth_pixels(xyz), 4)
    out[..., 5:7] = np.round(cam.project(xyz), 4)
    out[..., 7:11] = np.round(_orientations(xyz), 7)
    out[..., 11] = tracking
    return out


def _add_spurious_body(rows, rng, clean, cam, real_id) -> None:
    """A still, skeleton-like detection (furniture, a coat) beside the subject for a stretch."""
    T = len(rows)
    length = int(rng.integers(max(T // 5, 2), T + 1))
    start = int(rng.integers(0, T - length + 1))
    side = rng.choice([-1.0, 1.0])
    base = clean[0] + np.array([side * rng.uniform(0.8, 1.4), 0.0, rng.uniform(0.3, 1.0)])
    pose = base + rng.normal(0, 0.05, base.shape)
    ghost_id = real_id + int(rng.integers(1, 50))
    for t in range(start, start + length):
        xyz = pose + rng.normal(0, 0.01, pose.shape)
        full = _full_joints(xyz[None], np.ones((1, 25)), cam)[0]
        info = np.array([0, 0, 0, 0, 0, 0, 0, 0, 2], dtype=np.float64)
        rows[t].append((ghost_id, info, full))


# --------------------------------------------------------------------------------------------
# Writing
def write_clip(clip: ClipData, session_dir: Path, cfg: SynthConfig) -> dict[str, Any]:
    """Write one clip's files; returns its session.json entry."""
    from xmkd.ntu import write_skeleton

    write_skeleton(rec.skeleton_path(session_dir, clip.name), clip.skeleton)
    rec.write_video(rec.video_path(session_dir, clip.name), clip.frames_bgr, cfg.fps)
    # generated data can be regenerated: no per-file fsync (thousands of small files)
    ts_path = rec.timestamps_path(session_dir, clip.name)
    rec.write_timestamps(ts_path, clip.device_usec, clip.host_nsec, fsync=False)
    if cfg.flow:
        from capture.flow import FlowConfig, write_clip_flow

        short = min(cfg.width, cfg.height)  # flow at the video's own (small) resolution
        flow_cfg = FlowConfig(method="dis", preset=cfg.flow_preset, short_side=short)
        write_clip_flow(clip.frames_bgr, rec.flow_dir(session_dir, clip.name), flow_cfg)
    return {"name": clip.name, "frames": int(clip.frames_bgr.shape[0]), "fps": cfg.fps, **clip.meta}


def _work(args: tuple[list[ClipJob], SynthConfig, str]) -> list[dict[str, Any]]:
    jobs, cfg, out = args
    specs = M.action_library(cfg.classes, cfg.seed)
    return [write_clip(make_clip(job, cfg, specs), Path(out), cfg) for job in jobs]


@dataclass
class Summary:
    """What :func:`generate` produced."""

    session_dir: Path
    clips: int
    frames: int
    classes: list[str]
    per_split: dict[str, int]
    bytes: int
    seconds: float


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        info_path = out / rec.SESSION_FILE
        is_synth = False
        if info_path.is_file():
            try:
                is_synth = rec.read_session_json(out).get("source") == "synthetic"
            except XmkdError:
                is_synth = False
        if not is_synth:
            raise XmkdError(f"{out} is not empty and not a synthetic session; choose a new folder")
        # regenerate in place: remove the old synthetic clips so no stale clip survives
        info_path.unlink()
        for sub in (rec.SKELETON_DIR, rec.VIDEO_DIR, rec.FLOW_DIR, rec.TIMESTAMPS_DIR):
            shutil.rmtree(out / sub, ignore_errors=True)
    rec.make_session_dirs(out)


def generate(
    cfg: SynthConfig,
    out: str | Path,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Generate the session into ``out`` (created; a previous synthetic session there is
    replaced). ``workers`` processes share the clips; ``progress(n)`` is called as clips finish.
    The output is identical for any ``workers``."""
    t0 = time.perf_counter()
    out = Path(out)
    _prepare_out(out)
    specs = M.action_library(cfg.classes, cfg.seed)
    jobs = plan(cfg)
    chunk = max(1, min(16, len(jobs) // max(4 * workers, 1)))
    batches = [(jobs[i : i + chunk], cfg, str(out)) for i in range(0, len(jobs), chunk)]
    entries: list[dict[str, Any]] = []
    if workers <= 1:
        results: Iterator[list[dict[str, Any]]] = map(_work, batches)
        for res in results:
            entries.extend(res)
            if progress:
                progress(len(res))
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            for res in pool.imap_unordered(_work, batches):
                entries.extend(res)
                if progress:
                    progress(len(res))
    entries.sort(key=lambda e: e["name"])

    cam = R.Pinhole.for_size(cfg.width, cfg.height)
    devices = [
        {
            "camera": c,
            "serial": f"synthetic-C{c:03d}",
            "calibration": {
                "yaw_deg": R.VIEW_YAW_DEG[c],
                "color": cam.to_dict(),
                "depth": dict(R.DEPTH_MODEL),
            },
        }
        for c in cfg.views
    ]
    settings = {
        "generator": "xmkd.synth",
        "fps": cfg.fps,
        "config": cfg.to_dict(),
        "groups": {s.name: s.group for s in specs if s.group},
        "objects": {s.name: [k for k, _ in s.objects] for s in specs if s.objects},
    }
    info = rec.new_session_info("synthetic", devices, settings, [s.name for s in specs])
    info["clips"] = entries
    info["dropped_frames"] = {}
    rec.write_session_json(out, info)
    return summarize(out, time.perf_counter() - t0)


def summarize(out: str | Path, seconds: float = 0.0) -> Summary:
    """Clips per protocol split, classes, frames and disk size of a session."""
    from xmkd.ntu.splits import protocol_split

    session = rec.Session.open(out, verify=False)
    per_split: dict[str, int] = {}
    for clip in session.clips:
        split = protocol_split(clip.name) or "unused"
        per_split[split] = per_split.get(split, 0) + 1
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)
    return Summary(
        Path(out),
        len(session.clips),
        sum(c.frames for c in session.clips),
        session.class_names or [],
        per_split,
        size,
        seconds,
    )
