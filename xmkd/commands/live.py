"""``xmkd live``: classify a live skeleton stream headlessly and print predictions as they come."""

from __future__ import annotations

import argparse

from engines.choices import BACKEND_CHOICES, SMOOTHING_CHOICES
from engines.streaming import StreamingConfig
from xmkd.commands import _args as A

EVERY = A.int_range(1, 10000, "frames between two predictions")
#: the EMA weight of the newest prediction: 0 would never change, 1 is no smoothing
ALPHA = A.float_range(0.0, 1.0, lo_open=True, why="1 = no smoothing")


#: What ``xmkd live --help`` says before the options (wrapped to 100 columns by `register`).
ABOUT = (
    "Run the students of a checkpoint (or an exported .onnx) on a capture source: frames go into "
    "per-body ring buffers, every k frames the latest window is classified on a worker thread "
    "(capture never waits; stale requests are dropped), probabilities are smoothed over time and "
    "the top classes are printed with the frame-to-prediction latency. Engines: auto (first of "
    "tensorrt, onnxruntime-cuda, torch-cuda, onnxruntime-cpu, torch-cpu that can run), or a named "
    "one. The live window is the one the students were trained on: the history defaults to the "
    "training clips' duration (from the checkpoint or .onnx) at the source's frame rate, bodies "
    "are chosen by the training rule; the first lines say what was used and why. --json prints "
    'one JSON object per prediction ({"frame", "t", "top", "latency_ms", "truth"}; truth where '
    "the source knows the action: synthetic, NTU files named ...Aaaa) and a last "
    '{"summary": {...}} line with live_accuracy: the share of clips whose last frame had the '
    "right prediction standing (null when no clip's truth is known)."
)
SOURCES_NOTE = """\
  e.g. --source webcam:0, --source video:clip.mp4 (played as fast as it is estimated; add
  ?realtime=1 for its own rate), --source "orbbec:0?pose_model=rtmpose.onnx",
  --source "mkv:take.mkv?skeleton=lifted&pose_model=rtmpose.onnx"
  A source whose estimator cannot load (MediaPipe not installed, no RTMPose model file, no SDK)
  is refused with one sentence before the model is loaded."""


def register(subparsers: argparse._SubParsersAction) -> None:
    import textwrap

    from capture.registry import sources_help

    p = subparsers.add_parser(
        "live",
        help="classify a live skeleton stream and print predictions",
        description=(
            f'{textwrap.fill(ABOUT, 100)}\n\nsources (options follow "?"):\n'
            f"{sources_help()}\n\n{SOURCES_NOTE}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        type=A.as_path(A.existing_file),
        required=True,
        help="students checkpoint (xmkd distill), or an .onnx / TensorRT .plan from xmkd export",
    )
    p.add_argument(
        "--source",
        type=A.source_spec,
        default="synthetic",
        help="capture source spec, see above (default synthetic)",
    )
    p.add_argument(
        "--engine",
        choices=BACKEND_CHOICES,
        default="auto",
        help="inference engine (default auto: TensorRT where installed with a GPU, else the "
        "faster of ONNX Runtime and PyTorch, timed on this model at start)",
    )
    p.add_argument(
        "--every",
        type=EVERY,
        default=StreamingConfig.every,
        help=f"classify every k-th frame, and at each clip's end when the source plays clips "
        f"(default {StreamingConfig.every})",
    )
    p.add_argument(
        "--top", type=A.positive_int, default=5, help="classes printed per prediction (default 5)"
    )
    p.add_argument(
        "--history",
        type=A.window_int,
        help="frames per classified window (default: the training clips' duration converted to "
        "the source's frame rate, from the model's metadata)",
    )
    p.add_argument(
        "--smoothing",
        choices=SMOOTHING_CHOICES,
        default=StreamingConfig.smoothing,
        help=f"temporal smoothing of probabilities (default {StreamingConfig.smoothing})",
    )
    p.add_argument(
        "--alpha",
        type=ALPHA,
        default=StreamingConfig.ema_alpha,
        help=f"EMA weight of the newest prediction ({StreamingConfig.ema_alpha:g})",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON lines on stdout (one per prediction, then a summary); messages go to stderr",
    )
    p.add_argument(
        "--continual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="continual inference: one small step per 4 frames with one state per tracked body "
        "instead of the whole window per prediction (ST-GCN students on 'pad' windows only; "
        "at each clip end of a source that plays clips, the regular model on the clip). "
        "Default: --engine auto chooses it when the model can run it, and says so",
    )
    p.add_argument("--fp16", action="store_true", help="FP16 TensorRT engine")
    p.add_argument(
        "--max-seconds",
        type=A.positive_float,
        help="stop after this many seconds (default: end of source)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import queue
    import sys
    import time

    from capture.source import open_source
    from engines.backends import ModelSource, choose_continual, open_backend
    from engines.continual import open_continual
    from engines.streaming import ClipScorer, StreamingClassifier

    as_json = bool(getattr(args, "json", False))

    def say(text: str) -> None:  # human lines: stdout, or stderr when stdout carries JSON
        print(text, file=sys.stderr if as_json else sys.stdout, flush=True)

    config = StreamingConfig(
        every=args.every,
        history=args.history,
        smoothing=args.smoothing,
        ema_alpha=args.alpha,
        top_k=args.top,
    )
    # built (not opened) first: a camera source whose estimator, model file or SDK is missing is
    # its one sentence now, not after the model was loaded and exported
    capture_source = open_source(args.source)
    source = ModelSource.from_file(args.checkpoint)
    # a checkpoint is exported to ONNX once for onnxruntime (tens of seconds): say so, on stderr
    source.progress = lambda text: print(text, file=sys.stderr, flush=True)
    continual, why = choose_continual(getattr(args, "continual", None), args.engine, source)
    if continual:
        if args.fp16:
            say("note: --fp16 is ignored: the continual step runs FP32")
        backend = open_continual(args.engine, source, progress=say)
        backend.selection = why
    else:
        backend = open_backend(args.engine, source, "fp16" if args.fp16 else "fp32")
        backend.warm_up()
        if why:
            say(why)
    say(
        f"engine {backend.name}; {len(source.class_names)} classes; model window "
        f"{source.window} frames ({source.spec.fit})"
    )
    if backend.selection:
        say(backend.selection)

    def emit(prediction) -> None:
        if as_json:
            print(json.dumps(prediction.to_json()), flush=True)
        else:
            print(prediction.format(), flush=True)

    def drain(predictions: queue.Queue) -> int:
        count = 0
        while True:
            try:
                prediction = predictions.get_nowait()
            except queue.Empty:
                return count
            emit(prediction)
            count += 1

    frames = 0
    printed = 0
    latencies: list[float] = []
    scorer = ClipScorer(source.class_names)

    def on_prediction(prediction) -> None:
        latencies.append(prediction.latency_s)
        scorer.prediction(prediction)

    start = time.monotonic()
    classifier = StreamingClassifier(backend, config, on_prediction=on_prediction)
    with classifier, capture_source as capture:
        classifier.set_source_fps(capture.fps)
        # a file or generator played as fast as possible waits for each prediction: none is
        # skipped as stale, so the run (and its live accuracy) is repeatable
        lockstep = getattr(capture, "realtime", True) is False
        say(f"source {capture.description} at {capture.fps:g} fps")
        say(classifier.describe())
        try:
            for frame in capture:
                scorer.frame(frame)
                classifier.push(frame, wait=lockstep)
                frames += 1
                printed += drain(classifier.predictions)
                if args.max_seconds is not None and time.monotonic() - start >= args.max_seconds:
                    break
        finally:
            classifier.flush(timeout=30.0)
            printed += drain(classifier.predictions)
            dropped = capture.dropped_frames
    elapsed = time.monotonic() - start
    for error in classifier.errors[:3]:
        say(f"classification error: {error}")
    if frames and not classifier.frames_with_bodies:
        say("note: no frame had a tracked body, so there was nothing to classify")
    ms = sorted(x * 1000 for x in latencies)
    score = scorer.summary()
    if as_json:
        plan = classifier.plan
        summary = {
            "frames": frames,
            "seconds": round(elapsed, 3),
            "predictions": printed,
            "stale_requests_skipped": classifier.dropped_requests,
            "dropped_frames": dropped,
            "latency_ms_p50": round(ms[len(ms) // 2], 3) if ms else None,
            "latency_ms_p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3) if ms else None,
            "engine": backend.name,
            "history": plan.history,
            "fps": plan.fps,
            "selection": plan.selection,
            "every": config.every,
            "continual": classifier.continual,
            "smoothing": config.smoothing,
            "window_origin": plan.origin,
            "errors": classifier.errors[:3],
            **score,
        }
        print(json.dumps({"summary": summary}), flush=True)
    else:
        summary_text = (
            f"{frames} frames in {elapsed:.1f} s, {printed} predictions, "
            f"{classifier.dropped_requests} stale requests skipped, {dropped} frames dropped by "
            f"the source; model {backend.latency()}"
        )
        if ms:
            summary_text += f"; frame-to-prediction p50 {ms[len(ms) // 2]:.0f} ms"
        print(summary_text)
        if score["live_accuracy"] is not None:
            print(
                f"live accuracy {score['live_accuracy']:.1f}% ({score['clips_correct']}/"
                f"{score['clips']} clips: the prediction standing at each clip's last frame)"
            )
    return 1 if classifier.errors and not printed else 0
