"""Benchmark: the Record tab's preview as a user sees it: the synthetic source (1280x720 colour
and skeletons, paced at 30 fps) previewed for a few seconds, idle and with CPU hogs on every
core (a second job), side by side in one run:

* source fps and frames dropped (the paced source's own count: it fell behind real time);
* frames painted by the UI, as fps, and frames the UI never painted (replaced in the one-slot
  mailbox while the UI was busy: expected when painting is slower than the source, never a
  backlog);
* the UI thread's CPU per painted frame (image conversion, skeleton drawing);
* the preview image's width.

``--former`` adds, beside each row, the former preview path measured in the same run: frames
reduced to a fixed 960 px with INTER_AREA and colour-swapped by a numpy copy (about 15 ms of the
capture thread per 1280x720 frame), where the tab now reduces them with one bilinear resize and
``cv2.cvtColor`` to the width the view shows.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui_preview.py [--seconds 8] [--hogs N] [--former]

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


def former_preview_image(bgr, max_width: int = 960):
    """The preview reduction before it was made cheap (kept here only to compare)."""
    import cv2
    import numpy as np

    if bgr is None:
        return None, 1.0
    h, w = bgr.shape[:2]
    scale = 1.0
    if w > max_width:
        scale = max_width / w
        bgr = cv2.resize(bgr, (max_width, round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, 2::-1]), scale


def preview(app, seconds: float, work: Path, former: bool = False) -> dict:
    import gui.workers

    current = gui.workers.preview_image
    if former:
        gui.workers.preview_image = former_preview_image
    try:
        return _preview(app, seconds, work, former)
    finally:
        gui.workers.preview_image = current


def _preview(app, seconds: float, work: Path, former: bool) -> dict:
    from gui.record_tab import RecordTab

    tab = RecordTab()
    if former:  # a fixed preview width, whatever the view shows
        tab.preview_width = lambda full_size=None: 960
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
        "width": int(tab.video.image.image.shape[1]) if tab.video.image.image is not None else 0,
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
    parser.add_argument(
        "--former", action="store_true", help="also measure the former preview path, side by side"
    )
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
                paths = (("former", True), ("now", False)) if args.former else (("now", False),)
                for path, former in paths:
                    rows.append((f"{label}, {path}", preview(app, args.seconds, Path(tmp), former)))
            finally:
                stop.set()
                for p in procs:
                    p.join()
    platform = app.platformName()
    print(f"{os.cpu_count()} cores, Qt platform {platform}; synthetic 1280x720 @ 30 fps preview")
    print(
        f"{'machine, path':>20} {'source fps':>10} {'dropped':>8} {'painted fps':>12} "
        f"{'not painted':>12} {'UI ms/frame':>12} {'width':>6}"
    )
    for label, r in rows:
        print(
            f"{label:>20} {r['source_fps']:10.1f} {r['dropped']:8d} {r['painted_fps']:12.1f} "
            f"{r['not_painted']:12d} {r['ui_ms_per_frame']:12.2f} {r['width']:6d}"
        )


if __name__ == "__main__":
    main()
