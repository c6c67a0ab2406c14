"""Live tab: a real (tiny) checkpoint through the engines' streaming classifier on NTU replay of
.skeleton files generated like the real samples and on the synthetic source: top-5 bars,
timeline, latency and fps; and the window never freezes while capture, inference and a batch
evaluation run (how responsive it stays is measured in bench/bench_gui_responsiveness.py)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui.live_tab import LiveTab  # noqa: E402
from tests.gui_helpers import (  # noqa: E402
    CLASS_NAMES,
    StallMeter,
    assert_responsive,
    tiny_checkpoint,
    wait_until,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "students.pt")


@pytest.fixture
def tab(qtbot):
    tab = LiveTab()
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    yield tab
    tab.shutdown()


def test_live_on_ntu_replay_while_replay_evaluates_a_folder(
    qtbot, generated_ntu_samples, checkpoint, tmp_path
):
    """Live predictions on NTU replay (top-5 bars, timeline, latency and fps readouts), and the
    longest event-loop stall while capture + streaming inference (Live) and a folder evaluation
    with playback (Replay) run at the same time."""
    from gui.replay_tab import ReplayTab

    live, replay = LiveTab(), ReplayTab()
    for w in (live, replay):
        qtbot.addWidget(w)
        w.resize(1100, 700)
        w.show()
    live.picker.kind.setCurrentIndex(1)
    live.picker.path.setText(str(generated_ntu_samples[1]))  # two people: 2-body windows
    live.model_path.setText(str(checkpoint))
    live.engine.setCurrentText("torch-cpu")
    live.stride.setValue(2)
    replay.model_path.setText(str(checkpoint))
    replay.backend.setCurrentText("torch")
    for r in range(8):  # 40 files: a folder evaluation that takes a while
        for sample in generated_ntu_samples:
            name = sample.name[:13] + f"{r + 100:03d}" + sample.name[16:]
            shutil.copy(sample, tmp_path / name)
    replay.set_paths([tmp_path])
    assert replay.files.count() == 40
    replay.load_model()
    wait_until(qtbot, lambda: replay.predictor is not None, 30, "replay model")
    live.start_button.click()
    assert live.is_running() and not live.start_button.isEnabled()
    wait_until(qtbot, lambda: live.predictions >= 1, 30, "live running")
    meter = StallMeter().start()
    try:
        replay.speed.setCurrentText("1x")
        replay.play_button.setChecked(True)
        replay.evaluate_folder()
        wait_until(qtbot, lambda: replay.eval_result is not None, 60, "evaluation")
        assert replay.eval_result["count"] == 40
        wait_until(qtbot, lambda: live.predictions >= 10, 30, "live predictions")
    finally:
        meter.stop()
    assert_responsive(meter)  # (the fine-grained measure: bench/bench_gui_responsiveness.py)

    assert "torch-cpu" in live.engine_status.text()
    assert len(live.bars.items) == 5
    assert all(name in CLASS_NAMES for name, _ in live.bars.items)
    probs = [p for _, p in live.bars.items]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert live.current.text().split("  (")[0] == live.bars.items[0][0]
    assert live.timeline.segments and live.timeline.segments[-1][2] == live.bars.items[0][0]
    readout = live.readout.text()
    latency = float(readout.split("latency ")[1].split(" ms")[0])
    fps = float(readout.split("capture ")[1].split(" fps")[0])
    # NTU replay runs at 30 fps; after a stall on a busy machine the source catches up on at
    # most 1 s of frames at once (capture.source.Pacer), so a 0.5 s window can read up to 90
    assert 0 < latency < 5000 and 10 < fps < 100
    assert live.skeleton.body_count == 2
    live.stop_button.click()
    wait_until(qtbot, lambda: not live.is_running(), 10, "stopped")
    assert live.start_button.isEnabled()
    live.shutdown()
    replay.shutdown()


def test_missing_model_is_reported_before_starting(qtbot, tab, tmp_path):
    tab.model_path.setText(str(tmp_path / "nope.pt"))
    tab.start_button.click()
    assert not tab.is_running() and "nope.pt" in tab.message.text()


def test_unavailable_engine_is_one_sentence(qtbot, tab, checkpoint):
    tab.model_path.setText(str(checkpoint))
    tab.engine.setCurrentText("tensorrt")  # no TensorRT/GPU here (or a GPU box: it builds)
    tab.start_button.click()
    wait_until(qtbot, lambda: not tab.is_running(), 120, "worker ended or running")
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt" in tab.message.text().lower()
        assert "Traceback" not in tab.message.text()


def test_live_on_the_synthetic_source(qtbot, tab, checkpoint):
    tab.picker.kind.setCurrentIndex(0)
    tab.model_path.setText(str(checkpoint))
    tab.engine.setCurrentText("torch-cpu")
    tab.start_button.click()
    wait_until(qtbot, lambda: tab.predictions >= 3, 30, "predictions on synthetic frames")
    assert tab.skeleton.body_count >= 1 and len(tab.bars.items) == 5


def test_live_tab_offers_the_demos_model_and_the_one_just_distilled(
    qtbot, tmp_path, monkeypatch, checkpoint
):
    """The Live tab lists the models found (the demo's students, the Distill tab's output, the
    ones used before), newest first, and fills in the newest; a distillation that ends makes
    its checkpoint the one Start uses; the list survives a restart of the window."""
    import os

    from gui.app import MainWindow
    from gui.settings import open_settings

    monkeypatch.chdir(tmp_path)  # xmkd demo's default --out is relative: runs/demo
    demo = tmp_path / "runs" / "demo" / "students" / "best.pt"
    demo.parent.mkdir(parents=True)
    shutil.copy(checkpoint, demo)
    os.utime(demo, (1_000_000_000, 1_000_000_000))  # older than the distilled one
    settings = tmp_path / "settings.ini"
    window = MainWindow(open_settings(settings))
    qtbot.addWidget(window)
    live = window.live
    assert live.model_path.text() == str(demo.resolve())  # a new user: the demo's model
    assert live.models.itemData(0) == str(demo.resolve())

    run = tmp_path / "my_run"
    run.mkdir()
    window.distill.out_dir.setText(str(run))
    distilled = run / "best.pt"
    shutil.copy(checkpoint, distilled)
    window.distill.trained.emit(str(distilled))
    assert live.model_path.text() == str(distilled.resolve())
    listed = [live.models.itemData(i) for i in range(live.models.count())]
    assert listed == [str(distilled.resolve()), str(demo.resolve())]
    window.close()

    shutil.move(run, tmp_path / "moved")  # gone from its folder: remembered, but not there
    elsewhere = tmp_path / "moved" / "best.pt"
    window.distill.out_dir.setText(str(tmp_path / "other"))
    again = MainWindow(open_settings(settings))
    qtbot.addWidget(again)
    listed = [again.live.models.itemData(i) for i in range(again.live.models.count())]
    assert listed == [str(demo.resolve())] and not elsewhere.samefile(demo)
    again.live.models.setCurrentIndex(0)
    again.live.models.activated.emit(0)
    assert again.live.model_path.text() == str(demo.resolve())
    again.close()


@pytest.fixture(scope="module")
def pad_checkpoint(tmp_path_factory):
    """A narrow ST-GCN on "pad" windows (frames as they come): a model that runs continually."""
    import torch

    from xmkd.checkpoint import StreamInfo, make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import InputSpec

    torch.manual_seed(0)
    spec = InputSpec(window=32, fit="pad", center="frame", num_persons=1)
    student = ("stgcn", {"width": 0.125}, build_student("stgcn", len(CLASS_NAMES), width=0.125))
    path = tmp_path_factory.mktemp("pad") / "pad.pt"
    stream = StreamInfo(clip_frames=32, fps=30.0)
    save_checkpoint(
        path, make_checkpoint("students", [student], CLASS_NAMES, spec.to_dict(), stream=stream)
    )
    return path


@pytest.mark.parametrize(
    "choice, engine, continual",
    [("on", "torch-cpu", True), ("off", "torch-cpu", False), ("auto", "auto", True)],
)
def test_continual_switch_reaches_the_classifier(
    qtbot, tab, pad_checkpoint, generated_ntu_samples, choice, engine, continual
):
    """The Live tab's continual combo decides the classifier's mode for a model that can run
    continually: on -> continual, off -> the whole window, auto (engine auto) -> continual."""
    tab.picker.kind.setCurrentIndex(1)
    tab.picker.path.setText(str(generated_ntu_samples[0]))  # 82 frames: fast steps + clip end
    tab.model_path.setText(str(pad_checkpoint))
    tab.engine.setCurrentText(engine)
    tab.continual.setCurrentText(choice)
    tab.start_button.click()
    worker = tab.worker
    wait_until(qtbot, lambda: worker.classifier is not None, 60, "classifier loaded")
    assert worker.classifier.continual is continual
    wait_until(qtbot, lambda: tab.predictions >= 1, 30, "a prediction")
    status = tab.engine_status.text()
    assert ("continual on " in status) is continual, status
    if choice == "auto":
        assert "auto: continual inference" in status
    assert not tab.message.text()


def test_continual_on_for_a_resized_model_is_refused_in_one_sentence(qtbot, tab, checkpoint):
    """ "on" with a model on resampled windows (it cannot run continually): one sentence in the
    tab's message line naming the model and why, nothing running."""
    tab.picker.kind.setCurrentIndex(0)
    tab.model_path.setText(str(checkpoint))
    tab.engine.setCurrentText("torch-cpu")
    tab.continual.setCurrentText("on")
    tab.start_button.click()
    wait_until(qtbot, lambda: not tab.is_running(), 60, "worker ended")
    text = tab.message.text()
    assert "cannot run continually" in text and "'resize'" in text, text
    assert checkpoint.name in text and "--continual" not in text, text
    assert "Traceback" not in text and "\n" not in text
    assert tab.predictions == 0 and tab.start_button.isEnabled()
