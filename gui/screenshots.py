"""Render each tab of the app to PNG with real work behind it: ``python -m gui.screenshots``.

Runs offscreen (``QT_QPA_PLATFORM=offscreen`` unless a platform is set) and drives the tabs as a
user would, on the output of ``xmkd demo`` (a synthetic session, the teacher's label cache, a
students checkpoint; made with ``xmkd demo --preset tiny`` under ``--work`` when ``--demo`` is
not given):

* record.png: the synthetic source of the demo's preset recording its second take;
* distill_preview.png: the demo's teacher picked in the Distill tab and its preview (top
  classes on a few clips of the session);
* distill.png: the one-click job with that teacher (``xmkd label`` done, then ``xmkd distill``
  with CE + mutual on its labels) half-way through the distillation (stages, progress, ETA,
  curves), then cancelled;
* live.png: the demo's students classifying the live synthetic source;
* replay.png: a clip of the session with its video, prediction beside ground truth, and the
  evaluation of the whole folder.

Usage: ``python -m gui.screenshots [--out gui/screenshots] [--demo runs/demo] [--epochs 12]
[--tabs distill live]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: takes the window's picture into OUT/NAME.png
Shot = Callable[[str], None]


def _pump(app, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out after {timeout:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def _wait(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def ensure_demo(demo: Path) -> None:
    """Run ``xmkd demo --preset tiny`` into ``demo`` unless its students are there."""
    if (demo / "students" / "best.pt").is_file():
        return
    print(f"running xmkd demo --preset tiny --out {demo} (about a minute) ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "xmkd", "demo", "--preset", "tiny", "--out", str(demo), "--quiet"],
        check=True,
    )


def demo_session(demo: Path) -> Path:
    sessions = sorted(p.parent for p in (demo / "data").glob("*/session.json"))
    if not sessions:
        raise SystemExit(f"screenshots: no session under {demo / 'data'}")
    return sessions[0]


def demo_preset(session: Path) -> str:
    """The generator preset whose classes the session has (the live source must match)."""
    import dataclasses

    from xmkd.recordings import read_session_json
    from xmkd.synth import PRESETS, preset

    classes = read_session_json(session)["settings"]["config"]["classes"]
    for name in PRESETS:
        if dataclasses.asdict(preset(name))["classes"] == classes:
            return name
    return "default"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gui.screenshots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "screenshots")
    parser.add_argument("--work", type=Path, default=Path("runs") / "screenshots")
    parser.add_argument("--demo", type=Path, help="an `xmkd demo` output folder to show")
    parser.add_argument(
        "--model", type=Path, help="students checkpoint for Live and Replay (default: the demo's)"
    )
    parser.add_argument("--epochs", type=int, default=12, help="epochs of the Distill run")
    parser.add_argument(
        "--shot-at-epoch", type=int, help="epochs done when distill.png is taken (default half)"
    )
    parser.add_argument("--size", default="1280x800", help="window size (default 1280x800)")
    parser.add_argument(
        "--tabs",
        nargs="+",
        choices=("distill", "record", "live", "replay"),
        default=["distill", "record", "live", "replay"],
        help="the tabs to render (default all)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import pyqtgraph as pg
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from gui.app import MainWindow
    from gui.settings import open_settings

    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    demo = args.demo or args.work / "demo"
    ensure_demo(demo)
    session = demo_session(demo)
    preset = demo_preset(session)

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(antialias=True)
    settings_file = args.work / "settings.ini"
    settings_file.unlink(missing_ok=True)
    window = MainWindow(open_settings(settings_file))
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()

    def shot(name: str) -> None:
        path = args.out / f"{name}.png"
        # 256 colours without dithering: a tenth of the bytes, still sharp for widgets and plots
        image = (
            window.grab()
            .toImage()
            .convertToFormat(
                QImage.Format.Format_Indexed8,
                Qt.ImageConversionFlag.ThresholdDither | Qt.ImageConversionFlag.AvoidDither,
            )
        )
        image.save(str(path))
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)", flush=True)

    model = args.model or demo / "students" / "best.pt"
    if "distill" in args.tabs:
        shoot_distill(app, window, shot, args, demo, session)
    if "record" in args.tabs:
        shoot_record(app, window, shot, args, preset)
    if "live" in args.tabs:
        shoot_live(app, window, shot, preset, model)
    if "replay" in args.tabs:
        shoot_replay(app, window, shot, session, model)
    window.close()
    return 0


def shoot_distill(
    app: Any, window: Any, shot: Shot, args: argparse.Namespace, demo: Path, session: Path
) -> None:
    """The demo's teacher picked and previewed, then the one-click job half-way through its
    distillation (cancelled after the shot)."""
    from gui.teacher_picker import KINDS

    distill = window.distill
    window.show_tab("distill")
    run = args.work / "distill"
    distill.data_kind.setCurrentText("sessions")
    distill.data_path.setText(str(session))
    distill.labels.setText("")  # the teacher labels the clips: the job's first stage
    distill.teacher.kind.setCurrentText(next(k for k, v in KINDS.items() if v == "xmkd"))
    distill.teacher.checkpoint.setText(str(demo / "teacher" / "teacher.pt"))
    distill.preview_clips.setValue(8)
    distill.loss.setCurrentIndex(0)  # CE + mutual (the paper)
    distill.arch.setCurrentText("stgcn")
    distill.k.setValue(2)
    distill.epochs.setValue(args.epochs)
    distill.device.setCurrentText("cpu")
    distill.preset.setCurrentText("synthetic")
    distill.split.setCurrentText("student_train")
    distill.extra.setText("--quiet")
    distill.out_dir.setText(str(run))
    if run.exists():
        import shutil

        shutil.rmtree(run)
    distill.preview_button.click()
    _pump(app, lambda: not distill.preview_job.is_running(), 300, "the teacher preview")
    if not distill.preview_rows:
        raise SystemExit(f"screenshots: the preview failed: {distill.preview_status.text()}")
    _wait(app, 0.5)
    shot("distill_preview")
    distill.start_button.click()
    at = args.shot_at_epoch or max(1, args.epochs // 2)

    def epochs_done() -> int:
        return max((e["epoch"] for e in distill.events if e.get("event") == "epoch"), default=0)

    running = distill.pipeline.is_running
    _pump(app, lambda: epochs_done() >= at or not running(), 7200, "the label and distill job")
    if not running() and not distill.finished_ok:
        print(distill.log.toPlainText()[-3000:])
        raise SystemExit(f"screenshots: the job failed: {distill.error.text()}")
    _wait(app, 1.0)
    shot("distill")
    distill.cancel()
    _pump(app, lambda: not running(), 120, "distill cancel")


def shoot_record(app: Any, window: Any, shot: Shot, args: argparse.Namespace, preset: str) -> None:
    """The synthetic source of the demo's preset recording its second take."""
    record = window.record
    window.show_tab("record")
    record.picker.kind.setCurrentIndex(0)
    record.picker.preset.setCurrentText(preset)
    record.color_res.setCurrentText("720P")
    record.session_dir.setText(str(args.work / "recorded"))
    record.flow.setChecked(False)
    record.mode.setCurrentIndex(0)  # takes
    record.preview_button.click()
    _pump(app, lambda: record.video.frames_shown > 10, 60, "preview frames")
    record.record_button.click()
    _wait(app, 2.0)
    record.record_button.click()
    _pump(app, lambda: not record.is_running(), 60, "first take")
    record.record_button.click()
    _pump(app, lambda: record.recorder is not None and record.video.frames_shown > 40, 60, "take 2")
    _wait(app, 2.5)
    shot("record")
    record.stop()
    _pump(app, lambda: not record.is_running(), 60, "recording end")


def shoot_live(app: Any, window: Any, shot: Shot, preset: str, model: Path) -> None:
    """The demo's students classifying the live synthetic source."""
    live = window.live
    window.show_tab("live")
    live.picker.kind.setCurrentIndex(0)
    live.picker.preset.setCurrentText(preset)
    live.model_path.setText(str(model))
    live.engine.setCurrentText("torch")
    live.start_button.click()
    _pump(app, lambda: live.predictions >= 10, 120, "live predictions")
    _wait(app, 8.0)
    shot("live")
    live.stop()
    _pump(app, lambda: not live.is_running(), 30, "live stop")


def shoot_replay(app: Any, window: Any, shot: Shot, session: Path, model: Path) -> None:
    """A clip of the session with its video and prediction, the folder evaluated."""
    replay = window.replay
    window.show_tab("replay")
    replay.set_paths([session / "skeletons"])
    replay.model_path.setText(str(model))
    replay.backend.setCurrentText("torch")
    replay.load_model()
    _pump(app, lambda: replay.predictor is not None, 60, "replay model")
    replay.files.setCurrentRow(min(7, replay.files.count() - 1))
    _pump(app, lambda: replay.clip is not None and "%" in replay.prediction_label.text(), 60,
          "clip prediction")  # fmt: skip
    replay.seek(replay.clip.num_frames // 2)
    replay.evaluate_folder()
    _pump(app, lambda: replay.eval_result is not None, 600, "folder evaluation")
    _wait(app, 1.0)  # the matrix's axes lay out on the next passes of the event loop
    shot("replay")


if __name__ == "__main__":
    sys.exit(main())
