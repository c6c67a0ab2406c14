"""Benchmark: inference latency per engine and architecture, and live frame-to-prediction latency.

All numbers come from one run on one machine, side by side:

* batch-1 latency p50/p99 of ``Backend.classify`` for every engine that can run here (TensorRT,
  ONNX Runtime CUDA/CPU, PyTorch CUDA/CPU), for ST-GCN at windows 64 and 300 and HCN at its
  window (32, the reference), with the ratio to PyTorch eager on the same device
  (``speedup = eager p50 / engine p50``);
* end-to-end latency of the streaming classifier: a moving body is pushed at 30 fps (paced in
  real time), the model runs every 5 frames on the worker thread, and the time from a frame's
  arrival to its prediction is reported (p50/p99), with the number of stale requests skipped.

Widths default to CPU sizes (0.25); ``--reference`` benchmarks the reference networks (width 1,
3.1 M parameters for ST-GCN), which is what a GPU run should use. ``--quick`` runs few
iterations and a short stream (a smoke run, not a measurement).

    python bench/bench_engines.py [--quick] [--reference] [--engines torch-cpu,onnxruntime-cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

from capture.source import Body, Frame
from engines.backends import ModelSource, availability, create_backend
from engines.choices import AUTO_ORDER
from engines.streaming import StreamingClassifier, StreamingConfig
from xmkd.models import build_student
from xmkd.preprocess import default_input_spec

NUM_CLASSES = 60


def make_source(arch: str, window: int, width: float, exporter: str) -> ModelSource:
    torch.manual_seed(0)
    kwargs = {"width": width} | ({"window_size": window} if arch == "hcn" else {})
    model = build_student(arch, NUM_CLASSES, **kwargs).eval()
    if arch == "hcn":
        spec = default_input_spec("hcn", window=window)
    else:
        spec = default_input_spec("stgcn", window=window, fit="resize", center="frame")
    source = ModelSource(
        class_names=[f"A{i + 1:03d}" for i in range(NUM_CLASSES)],
        spec=spec,
        students=[model],
        exporter=exporter,
    )
    return source


def latency_row(backend, window: int, iters: int) -> tuple[float, float]:
    x = (np.random.default_rng(0).standard_normal((1, 3, window, 25, 2)) * 0.5).astype(np.float32)
    backend.warm_up(iterations=3)
    for _ in range(iters):
        backend.classify(x)
    stats = backend.latency()
    return stats.p50_ms, stats.p99_ms


def moving_frames(count: int) -> list[Frame]:
    frames = []
    base = np.stack([np.linspace(-0.3, 0.3, 25), np.linspace(-0.8, 0.7, 25), np.full(25, 3.0)], 1)
    for i in range(count):
        joints = base.copy()
        joints[4:12, 0] += 0.3 * np.sin(i / 4.0)  # arms wave
        frames.append(Frame(i, None, None, [Body(1, joints)], int(i * 1e6 / 30), 0))
    return frames


def stream_latency(backend, seconds: float, every: int = 5, fps: float = 30.0) -> dict:
    """Push frames at ``fps`` in real time; frame-to-prediction latency of what comes out."""
    latencies: list[float] = []
    config = StreamingConfig(every=every, smoothing="ema")
    classifier = StreamingClassifier(
        backend, config, on_prediction=lambda p: latencies.append(p.latency_s)
    )
    frames = moving_frames(int(seconds * fps))
    start = time.perf_counter()
    with classifier:
        for i, f in enumerate(frames):
            due = start + i / fps
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            f.host_nsec = time.monotonic_ns()  # arrival, as a live source stamps it
            classifier.push(f)
        classifier.flush(timeout=60)
    ms = np.asarray(latencies) * 1000.0
    return {
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "predictions": classifier.emitted,
        "skipped": classifier.dropped_requests,
        "requests": classifier.requests,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke run)")
    parser.add_argument("--reference", action="store_true", help="reference widths (1.0)")
    parser.add_argument(
        "--width", type=float, help="width multiplier (default 0.25, 1 with --reference)"
    )
    parser.add_argument("--iters", type=int, help="timed calls per row (default 30, quick 5)")
    parser.add_argument(
        "--stream-seconds", type=float, help="live stream length (default 4, quick 1.5)"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch/ORT"
    )
    parser.add_argument(
        "--engines",
        help=f"comma-separated engines (default: every available one of {', '.join(AUTO_ORDER)})",
    )
    parser.add_argument(
        "--exporter", choices=("dynamo", "torchscript"), default="dynamo", help="ONNX exporter"
    )
    args = parser.parse_args(argv)
    width = args.width or (1.0 if args.reference else 0.25)
    iters = args.iters or (5 if args.quick else 30)
    seconds = args.stream_seconds or (1.5 if args.quick else 4.0)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMKD_CACHE", tempfile.mkdtemp(prefix="xmkd-bench-"))

    reasons = availability()
    wanted = args.engines.split(",") if args.engines else list(AUTO_ORDER)
    engines = [e for e in wanted if reasons.get(e) is None]
    for e in wanted:
        if reasons.get(e) is not None:
            print(f"# skipped {e}: {reasons[e]}")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"# torch {torch.__version__}, {args.threads} CPU threads, GPU {gpu}; width {width}; "
        f"{iters} timed batch-1 calls per row; exporter {args.exporter}"
    )
    cases = [("stgcn", 64), ("stgcn", 300), ("hcn", 32)]
    if args.quick:
        cases = [("stgcn", 64), ("hcn", 32)]
    header = f"{'arch':6} {'window':>6} {'engine':18} {'p50 ms':>9} {'p99 ms':>9}"
    print(f"{header} {'vs eager':>9}")
    loaded: dict[tuple[str, int, str], object] = {}
    for arch, window in cases:
        source = make_source(arch, window, width, args.exporter)
        eager: dict[str, float] = {}
        rows = []
        for name in engines:
            try:
                backend = create_backend(name).load(source)
            except Exception as exc:  # report and continue with the other engines
                print(f"# {name} failed on {arch}/{window}: {exc}")
                continue
            p50, p99 = latency_row(backend, window, iters)
            device = "cuda" if ("cuda" in name or name == "tensorrt") else "cpu"
            if name.startswith("torch-"):
                eager[device] = p50
            rows.append((name, device, p50, p99))
            loaded[(arch, window, name)] = backend
        for name, device, p50, p99 in rows:
            ratio = eager.get(device, float("nan")) / p50
            print(f"{arch:6} {window:6d} {name:18} {p50:9.2f} {p99:9.2f} {ratio:8.2f}x")
        sys.stdout.flush()

    print(
        f"\n# streaming classifier: a moving body at 30 fps for {seconds:g} s, model every 5 "
        "frames; latency = frame arrival -> prediction emitted"
    )
    header = f"{'arch':6} {'window':>6} {'engine':18} {'p50 ms':>9} {'p99 ms':>9}"
    print(f"{header} {'preds':>6} {'skipped':>8}")
    for arch, window in [c for c in cases if c[1] != 300]:
        for name in engines:
            backend = loaded.get((arch, window, name))
            if backend is None:
                continue
            r = stream_latency(backend, seconds)
            print(
                f"{arch:6} {window:6d} {name:18} {r['p50']:9.2f} {r['p99']:9.2f} "
                f"{r['predictions']:6d} {r['skipped']:8d}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
