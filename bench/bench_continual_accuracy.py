"""Regular vs continual ST-GCN inference with the same weights: accuracy and agreement (issue 11).

    python bench/bench_continual_accuracy.py      # a synthetic session + a pad-spec ST-GCN (~3 min)
    python bench/bench_continual_accuracy.py --session S --checkpoint RUN/last.pt

Without --checkpoint it generates a small synthetic session (preset ``default``: 10 classes,
24-frame clips at 10 fps; 6 subjects per protocol split, 2 views, 2 repetitions) and trains one
ST-GCN (width 0.25) on its Student-Train clips with ground-truth labels on 32-frame "pad"
windows centred per frame (``xmkd distill --supervision full --fit pad --window 32 --center
frame``): the continual path needs "pad" windows. Then, on the session's Test clips and on the
real NTU RGB+D samples (``--ntu``, default ../shared/data/ntu-samples, skipped when absent):

* regular: the regular model on each clip's window (``ModelSource.prepare``, what ``xmkd eval``
  computes; the Test split's figure is also computed through ``xmkd eval``'s dataset path);
* continual exact: the streaming classifier in continual mode (``xmkd live --continual``) on the
  clips replayed as a folder, the prediction it makes at each clip's end (the equal variant,
  ``ContinualStepper.window_probs``): it should equal the regular one (max |dp| reported);
* continual fast, live: the fast (delayed) prediction standing at each clip's end in that same
  stream (states reset at every clip start, as the tracker does). Its first prediction comes
  after ``4 + delay`` = 80 frames, so a 24-frame clip has none: this row counts how many clips
  had one;
* continual fast, delay-compensated, clip alone: each clip's window columns pushed into a fresh
  state, then frames without a body (zeros, what the pad window holds after the clip) until the
  fast prediction pools exactly the window's columns (frame ``4K + delay``, K = window / 4).
  This is the fair comparison of the fast variant's *values*: same frames, its answer taken
  ``delay`` frames later; it differs from the regular model only in how the window's edge is
  treated (the regular model zero-pads every layer's input; the stream feeds zero *frames*,
  which the layers turn into non-zero activations);
* continual fast, delay-compensated, back to back: the clips concatenated into one stream
  without resets or clip marks (a camera), the fast prediction whose newest pooled column is
  the clip's last frame (taken ``delay`` + 3 frames after it). Each final column's receptive
  field is 153 frames, 15 s at 10 fps: about six synthetic clips, so this row shows what the
  fast path is worth on actions much shorter than its receptive field.

Accuracy is against the clip's label; for NTU files it uses ``engines.streaming.model_truth``'s
rule (action ``Aaaa`` -> class ``aaa - 1`` when the model has that many classes), which for a
synthetic-trained model names a different action: the meaningful NTU figure is the top-1
agreement with the regular model. Runs single-threaded in lockstep, so the numbers repeat.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.ntu_replay import NTUReplaySource, action_of  # noqa: E402
from engines.backends import ModelSource, TorchBackend, prepare_clip  # noqa: E402
from engines.continual import continual_reason, open_continual  # noqa: E402
from engines.streaming import StreamingClassifier, StreamingConfig, model_truth  # noqa: E402
from xmkd.data import SkeletonDataset  # noqa: E402
from xmkd.evaluate import predict  # noqa: E402
from xmkd.ntu import read_skeleton  # noqa: E402
from xmkd.ntu.splits import protocol_split  # noqa: E402
from xmkd.recordings import Session  # noqa: E402
from xmkd.tables import print_table as table  # noqa: E402
from xmkd.train.inputs import StudentWindows  # noqa: E402

SHARED_NTU = Path(__file__).resolve().parents[2] / "shared" / "data" / "ntu-samples"


def make_session_and_model(tmp: Path, per_split: int, epochs: int) -> tuple[Path, Path]:
    """A synthetic session and a pad-spec ST-GCN trained on it with ground-truth labels."""
    from xmkd.cli import main as xmkd
    from xmkd.synth import generate, preset
    from xmkd.synth.generator import tiny_subjects

    start = time.perf_counter()
    cfg = preset("default", subjects=tiny_subjects(per_split), views=(1, 2), repetitions=2)
    session = generate(cfg, tmp / "session", workers=1).session_dir
    print(f"generated {session} in {time.perf_counter() - start:.0f} s", flush=True)
    start = time.perf_counter()
    run = tmp / "run"
    args = ["distill", "--out", str(run), "--sessions", str(session), "--supervision", "full"]
    args += ["--students", "stgcn", "--width", "0.25", "--window", "32", "--fit", "pad"]
    args += ["--center", "frame", "--epochs", str(epochs), "--workers", "0", "--quiet"]
    if xmkd(args) != 0:
        raise SystemExit("training failed")
    print(f"trained in {time.perf_counter() - start:.0f} s (last.pt is used)", flush=True)
    return Path(session), run / "last.pt"


def replay(backend: Any, folder: Path, fps: float | None) -> tuple[list[Any], list[str]]:
    """Every prediction of the streaming classifier on a folder of .skeleton files played in
    lockstep, and the played files' stems in clip order."""
    predictions: list[Any] = []
    played: list[str] = []
    classifier = StreamingClassifier(backend, StreamingConfig(), on_prediction=predictions.append)
    kwargs = {"fps": fps} if fps else {}
    with classifier, NTUReplaySource(str(folder), realtime=False, video=False, **kwargs) as cap:
        classifier.set_source_fps(cap.fps)
        for frame in cap:
            if frame.clip is not None and frame.clip == len(played):
                played.append(cap.current.name.split(".")[0])
            classifier.push(frame, wait=True)
        classifier.flush()
    if classifier.errors:
        raise SystemExit(f"streaming failed: {classifier.errors[0]}")
    return predictions, played


def fast_alone(stepper: Any, window: np.ndarray) -> np.ndarray:
    """The fast prediction pooling exactly the window's K columns: the window's columns, then
    zero frames, into a fresh state; the prediction emitted at frame 4K + delay."""
    cont = stepper.ensemble.students[0]
    target = 4 * cont.columns + cont.delay
    state = stepper.start()
    zero = np.zeros_like(window[:, 0])
    probs = None
    for t in range(target):
        probs = stepper.push(state, window[:, t] if t < window.shape[1] else zero)
    assert probs is not None and state.frames == target
    return probs


def fast_back_to_back(stepper: Any, clips: list[np.ndarray]) -> list:
    """Each clip's frames (columns of a window as long as the clip) one after the other in one
    state; per clip, the fast prediction whose newest pooled column is the clip's last frame
    (or the nearest one before it: columns are every 4th frame)."""
    cont = stepper.ensemble.students[0]
    state = stepper.start()
    emitted: list[tuple[int, np.ndarray]] = []  # (centre of the newest pooled column, probs)
    ends, t = [], 0
    for clip in clips:
        for k in range(clip.shape[1]):
            probs = stepper.push(state, clip[:, k])
            if probs is not None:
                emitted.append((t - cont.delay - 3, probs))
            t += 1
        ends.append(t - 1)
    zero = np.zeros_like(clips[0][:, 0])
    for _ in range(cont.delay + 4):  # the last clip's columns
        probs = stepper.push(state, zero)
        if probs is not None:
            emitted.append((t - cont.delay - 3, probs))
        t += 1
    out = []
    for end in ends:
        before = [p for c, p in emitted if c <= end]
        out.append(before[-1] if before else None)
    return out


def evaluate(name: str, folder: Path, source: ModelSource, fps: float | None) -> list[tuple]:
    files = sorted(folder.glob("*.skeleton"))
    regular = TorchBackend("cpu").load(source)
    sequences = {f.stem: read_skeleton(f) for f in files}
    windows = {s: source.prepare(seq) for s, seq in sequences.items()}
    # every frame's column (the pad window's columns, frame by frame) for the back-to-back stream
    stream = source.stream_info
    whole = {
        s: prepare_clip(seq, source.spec.replace(window=seq.num_frames), stream.selection,
                        stream.max_bodies)
        for s, seq in sequences.items()
    }  # fmt: skip
    ref = {s: regular.classify(w[None])[0] for s, w in windows.items()}
    truth: dict[str, int | None] = {}
    for f in files:
        label, code = action_of(f)  # what NTU replay marks the file's frames with
        named = model_truth(SimpleNamespace(truth=code, label=label), source.class_names)
        truth[f.stem] = None if named is None else source.class_names.index(named)

    stepper = open_continual("torch-cpu", source)
    start = time.perf_counter()
    predictions, played = replay(stepper, folder, fps)
    stream_s = time.perf_counter() - start
    by_clip: dict[int, list[Any]] = {}
    for p in predictions:
        by_clip.setdefault(p.clip, []).append(p)
    exact = {s: next(p.raw for p in by_clip[k] if p.clip_end) for k, s in enumerate(played)}
    fast_live = {
        s: next((p.raw for p in reversed(by_clip[k]) if not p.clip_end), None)
        for k, s in enumerate(played)
    }
    alone = {s: fast_alone(stepper, windows[s]) for s in played}
    back = dict(zip(played, fast_back_to_back(stepper, [whole[s] for s in played])))

    rows = [(name, "regular (ModelSource.prepare)", ref, ref, truth)]
    rows.append((name, "continual exact at clip end (stream)", exact, ref, truth))
    rows.append((name, "continual fast, standing at clip end (stream)", fast_live, ref, truth))
    rows.append((name, "continual fast, +delay, clip alone", alone, ref, truth))
    rows.append((name, "continual fast, +delay, back to back", back, ref, truth))
    print(f"{name}: {len(files)} clips streamed in {stream_s:.1f} s", flush=True)
    return [score(*r) for r in rows]


def score(stream: str, what: str, probs: dict, ref: dict, truth: dict) -> tuple:
    have = [s for s in ref if probs.get(s) is not None]
    agree = sum(int(np.argmax(probs[s]) == np.argmax(ref[s])) for s in have)
    # a clip without a prediction counts as wrong (as xmkd live --json's ClipScorer does)
    scored = [s for s in ref if truth[s] is not None]
    correct = sum(int(s in have and np.argmax(probs[s]) == truth[s]) for s in scored)
    worst = max((float(np.abs(probs[s] - ref[s]).max()) for s in have), default=float("nan"))
    return (
        stream,
        what,
        f"{len(have)}/{len(ref)}",
        f"{100 * agree / len(have):.1f}" if have else "n/a",
        f"{worst:.1e}",
        f"{100 * correct / len(scored):.1f} ({len(scored)})" if scored else "n/a",
    )


def eval_path_accuracy(source: ModelSource, session: Session, names: list[str]) -> float:
    """``xmkd eval``'s path on the Test clips: SkeletonDataset -> StudentWindows -> predict."""
    raw = SkeletonDataset(session, names=names, labeled_only=True)
    data = StudentWindows(raw, source.spec, train=False)
    logits, labels, _ = predict([source.ensemble()], data)
    return 100.0 * float((logits[0].argmax(axis=1) == labels).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--session", type=Path, help="a synthetic session (default: generate one)")
    ap.add_argument("--checkpoint", type=Path, help="a pad-spec ST-GCN students checkpoint")
    ap.add_argument("--per-split", type=int, default=6, help="subjects per protocol split")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--ntu", type=Path, default=SHARED_NTU, help="folder of NTU .skeleton files")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="xmkd-bench-continual-acc-"))
    try:
        if args.checkpoint is None:
            session_dir, checkpoint = make_session_and_model(tmp, args.per_split, args.epochs)
        else:
            if args.session is None:
                raise SystemExit("--checkpoint needs --session (the data it was trained on)")
            session_dir, checkpoint = args.session, args.checkpoint
        session = Session.open(session_dir)
        source = ModelSource.from_checkpoint(checkpoint)
        reason = continual_reason(source)
        if reason is not None:
            raise SystemExit(f"{checkpoint}: this model cannot run continually: {reason}")
        cont = open_continual("torch-cpu", source).ensemble.students[0]
        print(
            f"model: {checkpoint} ({source.spec.window} frames, {source.spec.fit}, centre "
            f"{source.spec.center}, {len(source.class_names)} classes); continual delay "
            f"{cont.delay} frames, K = {cont.columns} pooled columns"
        )
        tests = [c for c in session.clips if protocol_split(c.name) == "test"]
        folder = tmp / "test-clips"
        folder.mkdir()
        for clip in tests:
            shutil.copy(clip.skeleton, folder / clip.skeleton.name)
        eval_acc = eval_path_accuracy(source, session, [c.name for c in tests])
        print(f"xmkd eval path on the {len(tests)} Test clips: {eval_acc:.1f}%", flush=True)
        rows = evaluate("synthetic Test", folder, source, float(session.fps))
        if args.ntu.is_dir() and any(args.ntu.glob("*.skeleton")):
            rows += evaluate("NTU samples", args.ntu, source, None)
        else:
            print(f"no NTU samples at {args.ntu}: that part is skipped")
        print()
        header = (
            "clips",
            "prediction",
            "made",
            "top-1 = regular %",
            "max |dp|",
            "acc % (n; none: wrong)",
        )
        table(header, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
