"""``xmkd live``: classify a live skeleton stream headlessly and print predictions as they come."""

from __future__ import annotations

import argparse

from engines.choices import BACKEND_CHOICES, SMOOTHING_CHOICES
from xmkd.commands import _args as A

EVERY = A.int_range(1, 10000, "frames between two predictions")
#: the EMA weight of the newest prediction: 0 would never change, 1 is no smoothing
ALPHA = A.float_range(0.0, 1.0, lo_open=True, why="1 = no smoothing")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live",
        help="classify a live skeleton stream and print predictions",
        description=(
            "Run the students of a checkpoint (or an exported .onnx) on a capture source: "
            "frames go into per-body ring buffers, every k frames the latest window is "
            "classified on a worker thread (capture never waits; stale requests are dropped), "
            "probabilities are smoothed over time and the top classes are printed with the "
            "frame-to-prediction latency. Sources: synthetic[:preset], ntu:PATH (.skeleton file "
            "or folder; add ?realtime=0 to play as fast as possible), mkv:PATH (Azure Kinect "
            "recording; body tracking needs the SDK), kinect[:N]. Engines: auto (first of "
            "tensorrt, onnxruntime-cuda, torch-cuda, onnxruntime-cpu, torch-cpu that can run), "
            "or a named one."
        ),
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
        help="capture source spec (default synthetic)",
    )
    p.add_argument(
        "--engine",
        choices=BACKEND_CHOICES,
        default="auto",
        help="inference engine (default auto: TensorRT where installed with a GPU, else the "
        "faster of ONNX Runtime and PyTorch, timed on this model at start)",
    )
    p.add_argument("--every", type=EVERY, default=5, help="classify every k-th frame (default 5)")
    p.add_argument(
        "--top", type=A.positive_int, default=5, help="classes printed per prediction (default 5)"
    )
    p.add_argument(
        "--history",
        type=A.window_int,
        help="frames per classified clip (default: the model's window for padded inputs, else 90)",
    )
    p.add_argument(
        "--smoothing",
        choices=SMOOTHING_CHOICES,
        default="ema",
        help="temporal smoothing of probabilities (default ema)",
    )
    p.add_argument(
        "--alpha", type=ALPHA, default=0.5, help="EMA weight of the newest prediction (0.5)"
    )
    p.add_argument("--fp16", action="store_true", help="FP16 TensorRT engine")
    p.add_argument(
        "--max-seconds",
        type=A.positive_float,
        help="stop after this many seconds (default: end of source)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import queue
    import sys
    import time

    from capture.source import open_source
    from engines.backends import ModelSource, open_backend
    from engines.streaming import StreamingClassifier, StreamingConfig

    config = StreamingConfig(
        every=args.every,
        history=args.history,
        smoothing=args.smoothing,
        ema_alpha=args.alpha,
        top_k=args.top,
    )
    source = ModelSource.from_file(args.checkpoint)
    # a checkpoint is exported to ONNX once for onnxruntime (tens of seconds): say so, on stderr
    source.progress = lambda text: print(text, file=sys.stderr, flush=True)
    backend = open_backend(args.engine, source, "fp16" if args.fp16 else "fp32")
    backend.warm_up()
    print(
        f"engine {backend.name}; {len(source.class_names)} classes; window {source.window} "
        f"frames ({source.spec.fit}); classifying every {args.every} frames",
        flush=True,
    )
    if backend.selection:
        print(backend.selection, flush=True)

    def drain(predictions: queue.Queue) -> int:
        count = 0
        while True:
            try:
                prediction = predictions.get_nowait()
            except queue.Empty:
                return count
            print(prediction.format(), flush=True)
            count += 1

    frames = 0
    printed = 0
    latencies: list[float] = []
    start = time.monotonic()
    classifier = StreamingClassifier(
        backend, config, on_prediction=lambda p: latencies.append(p.latency_s)
    )
    with classifier, open_source(args.source) as capture:
        print(f"source {capture.description} at {capture.fps:g} fps", flush=True)
        try:
            for frame in capture:
                classifier.push(frame)
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
        print(f"classification error: {error}")
    if frames and not classifier.frames_with_bodies:
        print("note: no frame had a tracked body, so there was nothing to classify")
    summary = (
        f"{frames} frames in {elapsed:.1f} s, {printed} predictions, "
        f"{classifier.dropped_requests} stale requests skipped, {dropped} frames dropped by the "
        f"source; model {backend.latency()}"
    )
    if latencies:
        ms = sorted(x * 1000 for x in latencies)
        summary += f"; frame-to-prediction p50 {ms[len(ms) // 2]:.0f} ms"
    print(summary)
    return 1 if classifier.errors and not printed else 0
