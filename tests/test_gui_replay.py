"""Replay tab on NTU .skeleton files (generated at test time like the real samples): open a
folder, play / pause / seek / speed, ground truth beside a real checkpoint's prediction, batch
evaluation with a confusion matrix."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui.replay_tab import ReplayTab, evaluate_files, ground_truth, load_clip  # noqa: E402
from tests.gui_helpers import CLASS_NAMES, tiny_checkpoint, wait_until  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "students.pt")


@pytest.fixture
def tab(qtbot):
    tab = ReplayTab()
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    yield tab
    tab.shutdown()


def test_ground_truth_comes_from_the_file_name(generated_ntu_samples, tmp_path):
    assert ground_truth(generated_ntu_samples[0]) == ("A011", 10)
    unlabeled = tmp_path / "S001C001P001R001A000.skeleton"
    assert ground_truth(unlabeled) == ("", None)
    assert ground_truth(tmp_path / "clip.skeleton") == ("", None)


def test_open_folder_play_pause_seek_speed(qtbot, tab, generated_ntu_samples):
    folder = generated_ntu_samples[0].parent
    tab.set_paths([folder])
    assert tab.files.count() == len(generated_ntu_samples)
    wait_until(qtbot, lambda: tab.clip is not None, message="first clip loaded")
    assert tab.clip.path == generated_ntu_samples[0]
    assert tab.clip.num_frames == 82 and tab.truth_label.text() == "ground truth: A011"
    assert tab.frame_label.text() == "1 / 82"
    assert tab.skeleton.body_count == 1

    tab.files.setCurrentRow(1)  # the two-person sample
    wait_until(qtbot, lambda: tab.clip.path == generated_ntu_samples[1], message="second clip")
    tab.seek(30)
    assert tab.index == 30 and tab.skeleton.body_count == 2
    x, _ = tab.skeleton.front._bones[1].getData()
    child = 0  # the first bone starts at joint 1 (spine base)
    assert x[0] == pytest.approx(tab.clip.joints[30][1][child, 0])

    tab.speed.setCurrentText("4x")
    tab.play_button.setChecked(True)
    assert tab.timer.isActive() and tab.timer.interval() == round(1000 / (30 * 4))
    wait_until(qtbot, lambda: tab.index >= 40, message="playback advances")
    tab.play_button.setChecked(False)
    stopped_at = tab.index
    qtbot.wait(100)
    assert tab.index == stopped_at and not tab.timer.isActive()
    tab.slider.setValue(69)
    tab.play_button.setChecked(True)  # at the end: play restarts from the first frame
    wait_until(qtbot, lambda: 0 < tab.index < 69, message="restart from the beginning")
    wait_until(qtbot, lambda: not tab.timer.isActive(), message="playback stops at the end")
    assert tab.index == 69 and tab.play_button.text() == "Play"


def test_paired_video_is_shown_beside_the_skeleton(qtbot, tab, generated_ntu_samples, tmp_path):
    import cv2

    skeleton = tmp_path / generated_ntu_samples[2].name
    shutil.copy(generated_ntu_samples[2], skeleton)
    video = tmp_path / (skeleton.name.removesuffix(".skeleton") + "_rgb.avi")
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (1920, 1080))
    for i in range(30):  # fewer frames than the skeleton's 100: the tab says so
        writer.write(np.full((1080, 1920, 3), i * 8, np.uint8))
    writer.release()
    clip = load_clip(skeleton)
    assert clip.video is not None and len(clip.video) == 30
    assert clip.video[0].shape == (360, 640, 3) and clip.video_scale == pytest.approx(1 / 3)
    tab.set_paths([skeleton])
    wait_until(qtbot, lambda: tab.clip is not None, message="clip with video")
    assert "video has 30 frames, skeleton 100" in tab.message.text()
    tab.seek(20)
    assert tab.video.image.isVisible() and tab.video.image.image[0, 0, 0] in range(155, 166)
    u, v = tab.video._overlays[0][1].getData()
    assert u[0] == pytest.approx(tab.clip.pixels[20][0][0, 0] / 3)


def test_prediction_beside_ground_truth_and_folder_evaluation(
    qtbot, tab, generated_ntu_samples, checkpoint
):
    tab.set_paths([generated_ntu_samples[0].parent])
    tab.model_path.setText(str(checkpoint))
    tab.backend.setCurrentText("torch")
    tab.load_model()
    wait_until(qtbot, lambda: tab.predictor is not None, 30, "model loaded")
    assert "torch-cpu" in tab.model_status.text()
    wait_until(qtbot, lambda: "%" in tab.prediction_label.text(), 30, "clip predicted")
    probs = tab.predictor.predict(tab.clip.sequence)
    best = CLASS_NAMES[int(np.argmax(probs))]
    assert best in tab.prediction_label.text()
    assert tab.truth_label.text() == "ground truth: A011 action 11"  # the model's class name
    assert tab.bars.items[0][0] == best and len(tab.bars.items) == 5

    tab.evaluate_folder()
    wait_until(qtbot, lambda: tab.eval_result is not None, 60, "folder evaluated")
    result = tab.eval_result
    assert result["count"] == len(generated_ntu_samples)
    assert result["confusion"].sum() == len(generated_ntu_samples)
    truths = sorted({ground_truth(p)[1] for p in generated_ntu_samples})
    assert set(truths) <= set(result["classes"])
    expected = evaluate_files(
        tab.predictor, list(generated_ntu_samples), lambda *a: None, lambda: False
    )
    assert expected["correct"] == result["correct"]
    assert tab.accuracy.text().startswith("accuracy ")
    assert tab.confusion.matrix is not None and tab.eval_progress.value() == len(
        generated_ntu_samples
    )
    assert "A011: action 11" in tab.confusion.toolTip()


def test_unreadable_files_are_reported_and_the_rest_evaluated(
    qtbot, tab, generated_ntu_samples, tmp_path, checkpoint
):
    for sample in generated_ntu_samples[:2]:
        shutil.copy(sample, tmp_path / sample.name)
    bad = tmp_path / "S001C001P001R001A005.skeleton"
    bad.write_text("3\r\n1\r\nnot a body\r\n")
    tab.set_paths([tmp_path])
    tab.model_path.setText(str(checkpoint))
    tab.backend.setCurrentText("torch")
    tab.load_model()
    wait_until(qtbot, lambda: tab.predictor is not None, 30, "model loaded")
    tab.evaluate_folder()
    wait_until(qtbot, lambda: tab.eval_result is not None, 60, "folder evaluated")
    assert tab.eval_result["count"] == 2 and len(tab.eval_result["failed"]) == 1
    assert bad.name in tab.message.text()
    tab.files.setCurrentRow(0)  # the bad file sorts first: its error is shown, no crash
    wait_until(qtbot, lambda: bad.name in tab.message.text(), 10, "load error shown")


def test_missing_model_file_is_one_sentence(qtbot, tab, tmp_path):
    tab.model_path.setText(str(tmp_path / "nope.pt"))
    tab.load_model()
    wait_until(qtbot, lambda: "no such model file" in tab.message.text(), 10, "error shown")
    assert tab.predictor is None and tab.model_status.text() == "no model"


def test_folder_evaluation_of_a_session_scores_the_test_split_like_xmkd_eval(
    qtbot, tab, tiny_session, tmp_path
):
    """A session's students trained on its other splits: the tab scores the clips `xmkd eval`
    scores (and says so), agreeing with it; every file stays a choice, named as such."""
    import json

    import torch

    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.cli import main
    from xmkd.data import SkeletonDataset
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec
    from xmkd.recordings import Session

    names = Session.open(tiny_session).class_names
    torch.manual_seed(0)
    students = [
        ("stgcn", {"width": 0.125}, build_student("stgcn", len(names), width=0.125))
        for _ in range(2)
    ]
    for _, _, model in students:  # He init: outputs that depend on the input
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
    spec = default_input_spec("stgcn", window=32, fit="resize")
    checkpoint = tmp_path / "students.pt"
    save_checkpoint(checkpoint, make_checkpoint("students", students, names, spec))

    tab.set_paths([tiny_session])
    assert tab.files.count() == 72
    assert tab.eval_scope.currentData() == "test"  # a session: what xmkd eval scores
    tab.model_path.setText(str(checkpoint))
    tab.backend.setCurrentText("torch")
    tab.load_model()
    wait_until(qtbot, lambda: tab.predictor is not None, 30, "model loaded")
    tab.evaluate_folder()
    wait_until(qtbot, lambda: tab.eval_result is not None, 60, "folder evaluated")
    result = tab.eval_result
    test_names = SkeletonDataset(tiny_session, split="test", labeled_only=True).names
    assert sorted(result["scored"]) == sorted(f"{n}.skeleton" for n in test_names)
    assert result["count"] == len(test_names) == 24
    assert "Test split: 24 of 72 labelled files (48 of other splits not scored)" in (
        tab.accuracy.text()
    )
    assert main(["eval", str(checkpoint), "--sessions", str(tiny_session), "--quiet",
                 "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    offline = metrics["ensembles"]["mean"]
    assert offline["count"] == result["count"]
    assert round(offline["top1"] * offline["count"]) == result["correct"]

    tab.eval_result = None
    tab.eval_scope.setCurrentIndex(tab.eval_scope.findData("all"))
    tab.evaluate_folder()
    wait_until(qtbot, lambda: tab.eval_result is not None, 60, "every file evaluated")
    assert tab.eval_result["count"] == 72
    text = tab.accuracy.text()
    assert "every labelled file: 72 (24 Teacher-Train, 24 Student-Train, 24 Test)" in text
    assert "training clips" in text
    assert "S001C001P001R001A001.skeleton" in tab.accuracy.toolTip()


def test_a_plain_folder_is_scored_whole_and_a_split_without_files_is_one_sentence(
    qtbot, tab, generated_ntu_samples, checkpoint
):
    tab.set_paths([generated_ntu_samples[0].parent])  # not a session: every file by default
    assert tab.eval_scope.currentData() == "all"
    tab.model_path.setText(str(checkpoint))
    tab.backend.setCurrentText("torch")
    tab.load_model()
    wait_until(qtbot, lambda: tab.predictor is not None, 30, "model loaded")
    tab.eval_scope.setCurrentIndex(tab.eval_scope.findData("student_train"))
    tab.evaluate_folder()  # P001, P008, P003, P015: no Student-Train subject
    assert tab.message.text() == (
        "none of the 5 labelled files is in the Student-Train split; choose other clips to score"
    )
    assert tab.eval_result is None and tab.eval_button.isEnabled()
