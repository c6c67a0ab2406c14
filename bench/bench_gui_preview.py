"""Benchmark: the Record tab's preview as a user sees it: the synthetic source (1280x720 colour
and skeletons, paced at 30 fps) previewed for a few seconds, idle and with CPU hogs on every
core (a second job), side by side in one run:

* source fps and frames dropped (the paced source's own count: it fell behind real time);
* frames painted by the UI, as fps, and frames the UI never painted (replaced in the one-slot
  mailbox while the UI was busy: expected when painting is slower than the source, never a
  backlog);
* the UI thread's CPU per painted frame (image conversion, skeleton drawing).

    QT_QPA_PLATFORM=offscreen python bench/bench_gui_preview.py [--seconds 8] [--hogs N]

Under a real X server (``xvfb-run -a python bench/bench_gui_preview.py``) painting goes through
the X connection too; run it both ways to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _hog(stop) -> None:
    while not stop.is_set():
        sum(range(10000))


def preview(app, seconds: float, work: Path) -> dict:
    from gui.record_tab import RecordTab

    tab = RecordTab()
    tab.resize(1280, 800)
    tab.show()
    tab.session_dir.setText(str(work / "session"))
    tab.picker.kind.setCurrentIndex(0)  # synthetic
    tab.color_res.setCurrentText(next(t for t in _resolutions() if "720" in t))
    painted = [0]
    cpu = [0.0]
    show = tab._show_frame

    def counted() -> None:
        c0 = time.thread_time()
        worker = tab.worker
        before = worker.slot.empty() if worker is not None else True
        show()
        if not before:
            painted[0] += 1
            cpu[0] += time.thread_time() - c0

    tab._show_frame = counted  # (connected in start_preview: after this)
    tab.start_preview()
    deadline = time.monotonic() + 60
    while tab.worker is None or tab.worker.frames < 5:
        app.processEvents()
        if time.monotonic() > deadline:
            raise SystemExit("the preview did not start")
    worker = tab.worker
    frames0, painted0, replaced0, cpu0 = worker.frames, painted[0], worker.slot.replaced, cpu[0]
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.monotonic() - t0
    frames, shown = worker.frames - frames0, painted[0] - painted0
    stats = dict(tab._last_stats)
    result = {
        "source_fps": frames / elapsed,
        "dropped": int(stats.get("dropped", 0)),
        "painted_fps": shown / elapsed,
        "not_painted": worker.slot.replaced - replaced0,
        "ui_ms_per_frame": 1000 * (cpu[0] - cpu0) / max(1, shown),
    }
    tab.shutdown()
    tab.close()
    tab.deleteLater()
    app.processEvents()
    return result


def _resolutions() -> list[str]:
    from gui.record_tab import COLOR_RESOLUTIONS

    return list(COLOR_RESOLUTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="busy processes")
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, hogs in (("idle", 0), (f"{args.hogs} CPU hogs", args.hogs)):
            stop = mp.Event()
            procs = [mp.Process(target=_hog, args=(stop,), daemon=True) for _ in range(hogs)]
            for p in procs:
                p.start()
            try:
                rows.append((label, preview(app, args.seconds, Path(tmp))))
            finally:
                stop.set()
                for p in procs:
                    p.join()
    platform = app.platformName()
    print(f"{os.cpu_count()} cores, Qt platform {platform}; synthetic 1280x720 @ 30 fps preview")
    print(
        f"{'machine':>12} {'source fps':>10} {'dropped':>8} {'painted fps':>12} "
        f"{'not painted':>12} {'UI ms/frame':>12}"
    )
    for label, r in rows:
        print(
            f"{label:>12} {r['source_fps']:10.1f} {r['dropped']:8d} {r['painted_fps']:12.1f} "
            f"{r['not_painted']:12d} {r['ui_ms_per_frame']:12.2f}"
        )


if __name__ == "__main__":
    main()
