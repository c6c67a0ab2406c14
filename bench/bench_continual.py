"""Continual vs full-window ST-GCN inference: the cost of one new prediction, side by side.

For each backend (torch-cpu, onnxruntime-cpu; torch-cuda when there is a GPU), window (300, 64),
width (1.0 = reference, 0.25 = the synthetic preset's), batch 1 and 1 or 2 threads, it times
interleaved:

* full: the regular model on the whole window (what the live path does for every prediction);
* step: one continual step (4 new frames -> one new prediction, the fast delayed variant);
* exact: (torch only) a step plus the flush that gives the regular model's output on the frames
  since the reset (the equal variant);

and prints wall time p50/p99 per prediction, FLOPs per prediction (torch.utils.flop_counter on
the torch modules: convolutions, einsums, matmuls) and the ratios. "push" is the end-to-end cost
in the runtime stepper (engines.continual.ContinualStepper) of the frame that completes a step:
numpy frame in, probabilities out.

The last line is ``continual speedup (reference ST-GCN, T=300, batch 1): <ratio>x``: full / step
p50 wall time, torch-cpu, 1 thread (2 threads share the cores with whatever else runs), in
this run. Numbers on a shared machine
are noisy (other processes take cores): compare ratios measured in one run, not absolute times.

A last section runs the streaming classifier itself (engines.streaming), regular window path
vs continual mode, on torch-cpu and onnxruntime-cpu at the reference width and window 300: the
frame-to-prediction latency p50/p99 and the frames per second each sustains.

    python bench/bench_continual.py            # all configurations
    python bench/bench_continual.py --quick    # fewer repetitions, the preset's width at 1 thread
                                               # only, 120 streamed frames (under two minutes)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.continual import ContinualEnsemble, ContinualStepper, export_continual  # noqa: E402
from engines.export import export_onnx  # noqa: E402
from xmkd.models.stgcn import STGCN  # noqa: E402
from xmkd.models.stgcn_continual import ContinualState, ContinualSTGCN  # noqa: E402


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def interleave(fns: dict[str, object], reps: dict[str, int], budget_s: float) -> dict[str, list]:
    """Time each function ``reps[name]`` times, round-robin, within ``budget_s`` (at least 3)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    start = time.perf_counter()
    rounds = max(reps.values())
    for r in range(rounds):
        for name, fn in fns.items():
            if r < reps[name]:
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and configs")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    backends = ["torch-cpu", "onnxruntime-cpu"] + (
        ["torch-cuda"] if torch.cuda.is_available() else []
    )
    threads_list = [1, 2]
    budget = 2.5 if args.quick else 30.0
    full_reps, step_reps = (3, 20) if args.quick else (15, 300)
    tmp = Path(tempfile.mkdtemp(prefix="bench-continual-"))
    began = time.perf_counter()
    rows = []
    speedup = None
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads available; batch 1, "
        "2 persons; times per prediction (full: the whole window, step: 4 new frames)"
    )
    for width in (1.0, 0.25):
        torch.manual_seed(0)
        model = STGCN(num_class=60, width=width, dropout=0.0).eval()
        full_onnx = tmp / f"full-{width}.onnx"
        export_onnx(model, full_onnx, 64, exporter="torchscript")
        for window in (300, 64):
            cont = ContinualSTGCN(model, window, 2).eval()
            ensemble = ContinualEnsemble([cont]).eval()
            step_onnx = tmp / f"step-{width}-{window}.onnx"
            export_continual(ensemble, step_onnx, steps=4)
            x = torch.randn(1, 3, window, 25, 2) * 0.5
            chunk = torch.randn(1, 3, 4, 25, 2) * 0.5
            # a warmed-up state: the pooled mean full, as in a running stream
            state = cont.initial_state(1)
            with torch.no_grad():
                for _ in range(cont.columns + 20):
                    _, _, *state = cont(chunk, *state)
            f_full = flops(lambda m=model, x=x: m(x))
            f_step = flops(lambda c=cont, x=chunk, s=state: c(x, *s))
            f_exact = f_step + flops(lambda c=cont, s=state: c.flush(ContinualState(tuple(s))))
            for backend in backends:
                threads_here = threads_list if backend.endswith("cpu") else [threads_list[-1]]
                if args.quick and width != 1.0:
                    threads_here = threads_here[:1]  # --quick: 2 threads at the reference width
                for threads in threads_here:
                    torch.set_num_threads(threads)
                    fns: dict[str, object] = {}
                    if backend.startswith("torch"):
                        dev = torch.device(backend.split("-")[1])
                        m, c = model.to(dev), cont.to(dev)
                        xd, cd = x.to(dev), chunk.to(dev)
                        sd = [s.to(dev) for s in state]
                        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

                        def run_full(m=m, xd=xd, sync=sync):
                            with torch.inference_mode():
                                m(xd)
                            sync()

                        def run_step(c=c, cd=cd, sd=sd, sync=sync):
                            with torch.inference_mode():
                                c(cd, *sd)
                            sync()

                        def run_exact(c=c, cd=cd, sd=sd, sync=sync):
                            with torch.inference_mode():
                                _, _, *new = c(cd, *sd)
                                c.flush(ContinualState(tuple(new)))
                            sync()

                        fns = {"full": run_full, "step": run_step, "exact": run_exact}
                    else:
                        import onnxruntime as ort

                        opts = ort.SessionOptions()
                        opts.intra_op_num_threads = threads
                        opts.log_severity_level = 3
                        sess_full = ort.InferenceSession(str(full_onnx), opts)
                        sess_step = ort.InferenceSession(str(step_onnx), opts)
                        names = [f"state_{n}" for n in ensemble.state_names()]
                        feed = {
                            "frames": chunk.numpy(),
                            **{n: s.numpy() for n, s in zip(names, state)},
                        }
                        xn = x.numpy()
                        fns = {
                            "full": lambda s=sess_full, xn=xn: s.run(None, {"skeleton": xn}),
                            "step": lambda s=sess_step, feed=feed: s.run(None, feed),
                        }
                    # end to end in the stepper: the frame that completes a step
                    stepper = ContinualStepper.open(
                        backend, ensemble, onnx_path=step_onnx, threads=threads
                    )
                    st = stepper.start()
                    frame = chunk[0, :, 0].numpy()

                    def push(stepper=stepper, st=st, frame=frame):
                        for _ in range(4):
                            stepper.push(st, frame)

                    fns["push"] = push
                    reps = {k: (full_reps if k == "full" else step_reps) for k in fns}
                    times = interleave(fns, reps, budget)
                    model.cpu(), cont.cpu()
                    res = {k: percentiles(v) for k, v in times.items()}
                    ratio = res["full"][0] / res["step"][0]
                    flop = {"full": f_full, "step": f_step, "exact": f_exact, "push": f_step}
                    for name, (p50, p99) in res.items():
                        rows.append(
                            (
                                backend,
                                threads,
                                width,
                                window,
                                name,
                                p50,
                                p99,
                                flop[name],
                                res["full"][0] / p50,
                            )
                        )
                    if backend == "torch-cpu" and threads == 1 and width == 1.0 and window == 300:
                        speedup = ratio
                    print(
                        f"  done {backend} threads {threads} width {width} T={window} "
                        f"({time.perf_counter() - began:.0f} s)",
                        flush=True,
                    )
    print()
    print(
        f"{'backend':16} {'thr':>3} {'width':>5} {'T':>4} {'what':6} {'p50 ms':>9} "
        f"{'p99 ms':>9} {'GFLOPs':>8} {'full/this':>9}"
    )
    for backend, threads, width, window, name, p50, p99, fl, r in rows:
        print(
            f"{backend:16} {threads:>3} {width:>5} {window:>4} {name:6} {p50:9.2f} {p99:9.2f} "
            f"{fl / 1e9:8.3f} {r:8.1f}x"
        )
    print()
    streaming(tmp, args.quick)
    print(f"continual speedup (reference ST-GCN, T=300, batch 1): {speedup:.1f}x")
    return 0


def streaming(tmp: Path, quick: bool) -> None:
    """End to end in the streaming classifier (engines.streaming): a stream of one moving body
    pushed in lockstep (each frame handled before the next), reference width, window 300, 2
    threads; frame-to-prediction latency (arrival of the newest frame -> prediction emitted,
    preprocessing included) and the frames per second the path sustains."""
    import os

    from capture.source import Body, Frame, host_clock_ns
    from engines.backends import ModelSource, open_backend
    from engines.continual import open_continual
    from engines.streaming import StreamingClassifier, StreamingConfig
    from xmkd.checkpoint import StreamInfo
    from xmkd.preprocess import InputSpec

    os.environ.setdefault("XMKD_CACHE", str(tmp / "cache"))
    torch.set_num_threads(2)
    torch.manual_seed(0)
    source = ModelSource(
        class_names=[f"A{i:03d}" for i in range(1, 61)],
        spec=InputSpec(window=300, fit="pad", center="none", num_persons=2),
        students=[STGCN(num_class=60, width=1.0, dropout=0.0).eval()],
        stream=StreamInfo(clip_frames=300, fps=30.0),
        exporter="torchscript",
    )
    frames = 120 if quick else 400

    def frame(t: int) -> Frame:
        joints = np.zeros((25, 3))
        joints[:, 0] = 0.2 * np.sin(t / 5.0) + np.linspace(0, 0.5, 25)
        joints[:, 1] = np.linspace(-0.8, 0.7, 25)
        joints[:, 2] = 3.0
        return Frame(t, None, None, [Body(1, joints)], t * 33_333, 0)

    print(
        "streaming classifier, reference width, T=300, 2 threads, one body, lockstep "
        f"({frames} frames; regular path every 20 frames, continual every 4 after its delay)"
    )
    print(f"{'backend':16} {'mode':9} {'preds':>5} {'p50 ms':>9} {'p99 ms':>9} {'frames/s':>9}")
    for name in ("torch-cpu", "onnxruntime-cpu"):
        for mode in ("regular", "continual"):
            if mode == "continual":
                backend = open_continual(name, source, threads=2)
                config = StreamingConfig()
            else:
                backend = open_backend(name, source)
                backend.warm_up(iterations=1)
                config = StreamingConfig(every=20, min_frames=8)
            preds: list = []
            classifier = StreamingClassifier(backend, config, on_prediction=preds.append)
            start = time.perf_counter()
            with classifier:
                for t in range(frames):
                    f = frame(t)
                    f.host_nsec = host_clock_ns()
                    classifier.push(f, wait=True)
                classifier.flush()
            fps = frames / (time.perf_counter() - start)
            ms = np.asarray([p.latency_s for p in preds]) * 1000.0
            p50, p99 = (np.percentile(ms, 50), np.percentile(ms, 99)) if ms.size else (np.nan,) * 2
            print(f"{name:16} {mode:9} {len(preds):5d} {p50:9.2f} {p99:9.2f} {fps:9.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
