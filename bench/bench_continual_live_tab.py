"""Does the Live tab keep up with a 30 fps source with a reference-size ST-GCN (issue 11)?

    QT_QPA_PLATFORM=offscreen python bench/bench_continual_live_tab.py [--seconds 20]

The Live tab itself (gui.live_tab.LiveTab, offscreen) runs a students checkpoint holding one
reference-size ST-GCN (width 1.0, 60 classes, the reference "pad" window of 300 frames, 2
persons; random weights: the cost does not depend on them) on the synthetic source played in
real time at 30 fps with 30-s clips (900 frames: a clip start resets the continual state, so
short clips would measure mostly the 80-frame warm-up). For the continual switch on (torch-cpu
and onnxruntime-cpu) and off (the whole window every ``--every`` frames, torch-cpu) it counts,
from the first prediction on for ``--seconds``: frames captured and handed to the classifier,
predictions shown, frames the continual worker had to drop (its backlog overflowed: it could
not keep up), stale window requests dropped (the regular path), and the frame-to-prediction
latency p50/p99. Real time means: no frame dropped and a prediction every 4 frames (7.5/s) in
continual mode. The machine is shared: the table's load line says how busy it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def reference_checkpoint(path: Path) -> Path:
    import torch

    from xmkd.checkpoint import StreamInfo, make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    spec = default_input_spec("stgcn")  # 300 frames, pad, 2 persons
    student = ("stgcn", {"width": 1.0}, build_student("stgcn", 60, width=1.0))
    names = [f"A{i:03d}" for i in range(1, 61)]
    stream = StreamInfo(clip_frames=300, fps=30.0)
    checkpoint = make_checkpoint("students", [student], names, spec.to_dict(), stream=stream)
    save_checkpoint(path, checkpoint)
    return path


def run(app, checkpoint: Path, engine: str, mode: str, seconds: float, every: int) -> tuple:
    from gui.live_tab import LiveTab

    tab = LiveTab()
    tab.resize(1100, 700)
    tab.show()
    base_spec = tab.picker.spec
    tab.picker.kind.setCurrentIndex(0)  # synthetic
    tab.picker.spec = lambda options=None: base_spec({"fps": 30, "frames": 900})
    tab.model_path.setText(str(checkpoint))
    tab.engine.setCurrentText(engine)
    tab.continual.setCurrentText(mode)
    tab.stride.setValue(every)
    tab.start_button.click()
    worker = tab.worker

    def pump(until) -> None:
        deadline = time.monotonic() + 300
        while not until() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.005)

    pump(lambda: worker.classifier is not None or not tab.is_running())
    classifier = worker.classifier
    if classifier is None:
        raise SystemExit(f"{engine} {mode}: {tab.message.text()}")
    pump(lambda: tab.predictions >= 1)
    frames0, preds0 = classifier.frames_seen, tab.predictions
    dropped0, stale0 = classifier.dropped_frames, classifier.dropped_requests
    while not classifier.predictions.empty():
        classifier.predictions.get_nowait()
    latencies: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        app.processEvents()
        while not classifier.predictions.empty():
            latencies.append(classifier.predictions.get_nowait().latency_s)
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    frames = classifier.frames_seen - frames0
    preds = tab.predictions - preds0
    dropped = classifier.dropped_frames - dropped0
    stale = classifier.dropped_requests - stale0
    tab.shutdown(10000)
    tab.close()
    ms = np.asarray(latencies) * 1000.0
    p50, p99 = (np.percentile(ms, 50), np.percentile(ms, 99)) if ms.size else (np.nan, np.nan)
    return (
        engine,
        "continual" if classifier.continual else f"regular, every {every}",
        frames / elapsed,
        preds / elapsed,
        dropped,
        stale,
        p50,
        p99,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured per configuration")
    ap.add_argument("--every", type=int, default=5, help="the regular path's stride")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="xmkd-bench-live-tab-"))
    os.environ.setdefault("XMKD_CACHE", str(tmp / "cache"))
    checkpoint = reference_checkpoint(tmp / "reference.pt")
    load = os.getloadavg()[0]
    rows = [
        run(app, checkpoint, "torch-cpu", "on", args.seconds, args.every),
        run(app, checkpoint, "onnxruntime-cpu", "on", args.seconds, args.every),
        run(app, checkpoint, "torch-cpu", "off", args.seconds, args.every),
    ]
    print(
        f"Live tab, reference ST-GCN (width 1.0, T=300, pad, 2 persons), synthetic source at "
        f"30 fps, {args.seconds:g} s each; {os.cpu_count()} CPUs, load average {load:.1f} "
        "before the run"
    )
    print(
        f"{'engine':16} {'mode':18} {'frames/s':>8} {'preds/s':>8} {'dropped':>7} "
        f"{'stale':>6} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for engine, mode, fps, pps, dropped, stale, p50, p99 in rows:
        print(
            f"{engine:16} {mode:18} {fps:8.1f} {pps:8.2f} {dropped:7d} {stale:6d} "
            f"{p50:8.1f} {p99:8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
