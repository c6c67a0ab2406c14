"""The Distill tab's one-click job driven as a user would, on the tiny synthetic session with a
tiny TSN teacher checkpoint and a tiny local CLIP: pick the teacher, preview its top classes on a
few clips, run label -> distill -> export in child processes (the real ``xmkd`` commands), cancel
in the label stage, close the window, reopen it and resume from the run folder's state, and find
the exported model offered in the Live tab; an open-vocabulary teacher labels from typed action
names."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui import pipeline as jobs  # noqa: E402
from gui.distill_tab import DistillTab  # noqa: E402
from gui.teacher_picker import KINDS, TeacherPicker  # noqa: E402
from tests.gui_helpers import wait_until  # noqa: E402


def _kind(picker: TeacherPicker, key: str) -> None:
    picker.kind.setCurrentText(next(text for text, k in KINDS.items() if k == key))


@pytest.fixture(scope="module")
def teacher_checkpoint(tiny_session, tmp_path_factory):
    """A random-weight TSN teacher over the session's own classes (RGB, 2 segments, 64x64):
    small enough to label the 24 Student-Train clips in about a second."""
    import torch

    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.models.tsn import TSN
    from xmkd.recordings import read_session_json

    classes = list(read_session_json(tiny_session)["classes"])
    torch.manual_seed(0)
    model = TSN(len(classes), modality="rgb", num_segments=2, width=0.25, stem="small")
    spec = model.input_spec(crop_size=64, scale_size=None, scales=(1.0,))
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    payload = make_checkpoint(
        "teacher",
        [("tsn", model.init_kwargs, model)],
        classes,
        spec.to_dict(),
        extra={"modality": "rgb"},
    )
    save_checkpoint(path, payload)
    return path


def _students_form(tab: DistillTab, session, run) -> None:
    """Tiny students, one epoch on the session's Student-Train clips."""
    tab.data_kind.setCurrentText("sessions")
    tab.data_path.setText(str(session))
    tab.labels.setText("")
    tab.loss.setCurrentIndex(0)  # CE + mutual on the teacher's labels
    tab.arch.setCurrentText("stgcn")
    tab.k.setValue(2)
    tab.width.setValue(0.125)
    tab.epochs.setValue(1)
    tab.device.setCurrentText("cpu")
    tab.preset.setCurrentText("synthetic")
    tab.split.setCurrentText("student_train")
    tab.extra.setText("--window 16 --fit resize --quiet")
    tab.out_dir.setText(str(run))


def test_teacher_picker_writes_what_xmkd_label_accepts(qtbot, tmp_path, teacher_checkpoint):
    from xmkd.cli import build_parser

    picker = TeacherPicker()
    qtbot.addWidget(picker)
    parser = build_parser()
    assert picker.problem().startswith("teacher: choose the teacher checkpoint")
    picker.checkpoint.setText(str(tmp_path / "missing.pt"))
    assert "missing.pt does not exist" in picker.problem()
    picker.checkpoint.setText(str(teacher_checkpoint))
    assert picker.problem() == "" and picker.args() == ["--teacher", str(teacher_checkpoint)]
    assert picker.checkpoint_row.isVisibleTo(picker) and not picker.weights_row.isVisibleTo(picker)

    _kind(picker, "torchvision")
    assert picker.arch.currentText() == "r3d_18" and picker.spec() == "torchvision:r3d_18"
    assert picker.weights_row.isVisibleTo(picker) and not picker.actions.isVisibleTo(picker)
    weights = tmp_path / "r3d_18.pth"
    picker.weights.setText(str(weights))
    assert "r3d_18.pth does not exist" in picker.problem()
    weights.write_bytes(b"")
    picker.class_map.setCurrentText("ntu60_from_kinetics400")
    picker.min_confidence.setValue(0.3)
    picker.weak.setCurrentText("background class")
    picker.extra.setText("--clips-per-video 3")
    assert picker.problem() == ""
    args = picker.args()
    assert args == [
        "--teacher", "torchvision:r3d_18", "--weights", str(weights),
        "--classes", "ntu60_from_kinetics400", "--min-confidence", "0.3", "--background",
        "--clips-per-video", "3",
    ]  # fmt: skip
    parsed = parser.parse_args(["label", *args, "--out", str(tmp_path / "l.pt")])
    assert parsed.min_confidence == pytest.approx(0.3) and parsed.background
    picker.class_map.setCurrentText(str(tmp_path / "nomap.toml"))
    assert "nomap.toml is neither a file nor a shipped map" in picker.problem()

    _kind(picker, "clip")
    picker.class_map.setCurrentText("")
    picker.min_confidence.setValue(0.0)
    picker.extra.setText("")
    assert picker.problem().startswith("teacher: name the CLIP")
    picker.hf_model.setText(str(tmp_path))
    assert "needs the target actions" in picker.problem()
    picker.actions.setText(" drink water,  sit down ,")
    assert picker.problem() == ""
    args = picker.args()
    assert args == ["--teacher", f"clip:{tmp_path}", "--actions", "drink water, sit down"]
    assert parser.parse_args(["label", *args, "--preview", "2", "--json"]).actions

    # the Distill tab: no label cache -> the label stage writes RUN/labels.pt for distill
    tab = DistillTab()
    qtbot.addWidget(tab)
    run = tmp_path / "run"
    tab.data_kind.setCurrentText("sessions")
    tab.data_path.setText(str(tmp_path))
    tab.preset.setCurrentText("synthetic")
    tab.out_dir.setText(str(run))
    _kind(tab.teacher, "xmkd")
    tab.teacher.checkpoint.setText(str(teacher_checkpoint))
    state = tab.plan()
    assert [s.name for s in state.stages] == ["label", "distill", "export"]
    label = state.stages[0].args
    assert label[label.index("--out") + 1] == str(run / "labels.pt")
    assert label[-2:] == ["--progress-json", "-"]
    distill = state.stages[1].args
    assert distill[distill.index("--labels") + 1] == str(run / "labels.pt")
    assert tab.stages.statuses == {"label": "pending", "distill": "pending", "export": "pending"}
    tab.labels.setText(str(tmp_path / "given.pt"))  # a label cache made earlier: no label stage
    tab.export_when_done.setChecked(False)
    assert [s.name for s in tab.plan().stages] == ["distill"]
    assert tab.stages.statuses["label"] == "skipped" and tab.stages.statuses["export"] == "skipped"
    tab.labels.setText("")
    tab.teacher.checkpoint.setText("")
    with pytest.raises(Exception, match="choose the teacher checkpoint"):
        tab.plan()


def test_job_state_file_and_how_each_stage_resumes(qtbot, tmp_path):
    run = tmp_path / "run"
    state = jobs.plan(run, ["distill", "--out", str(run)], ["label", "--out", "x"], ["--fp16"])
    state.stages[0].status = "done"
    state.stages[1].status = "running"  # the app ended while it ran
    state.save()
    loaded = jobs.PipelineState.load(run)
    assert [(s.name, s.status) for s in loaded.stages] == [
        ("label", "done"), ("distill", "running"), ("export", "pending")
    ]  # fmt: skip
    assert loaded.next_stage().name == "distill" and not loaded.complete()
    distill, export = loaded.stages[1], loaded.stages[2]
    assert jobs.stage_command(distill, run) == ["distill", "--out", str(run)]  # nothing yet
    (run / "last.pt").write_bytes(b"")
    assert jobs.stage_command(distill, run)[-1] == "--resume"
    assert jobs.stage_command(export, run) == ["export", str(run / "last.pt"), "--fp16"]
    (run / "best.pt").write_bytes(b"")
    assert jobs.stage_command(export, run)[1] == str(run / "best.pt")

    tab = DistillTab()
    qtbot.addWidget(tab)
    tab.out_dir.setText(str(run))
    assert tab.stages.statuses == {"label": "done", "distill": "running", "export": "pending"}
    assert tab.resume_button.isEnabled()
    tab.start_button.click()  # never over a run
    assert "already holds a run (pipeline.json)" in tab.error.text()
    (run / "pipeline.json").write_text("{not json")
    tab.resume_button.click()
    assert not tab.pipeline.is_running()
    assert "pipeline.json: is not a pipeline state file" in tab.error.text()


def test_preview_shows_the_teachers_top_classes(qtbot, tiny_session, teacher_checkpoint):
    from xmkd.recordings import read_session_json

    classes = set(read_session_json(tiny_session)["classes"])
    tab = DistillTab()
    qtbot.addWidget(tab)
    tab.data_kind.setCurrentText("sessions")
    tab.data_path.setText(str(tiny_session))
    tab.device.setCurrentText("cpu")
    _kind(tab.teacher, "xmkd")
    tab.teacher.checkpoint.setText(str(teacher_checkpoint))
    tab.preview_clips.setValue(3)
    tab.preview_button.click()
    assert tab.preview_job.is_running() and tab.preview_button.text() == "Stop preview"
    wait_until(qtbot, lambda: not tab.preview_job.is_running(), 60, "the preview")
    assert tab.preview_button.text() == "Preview"
    assert len(tab.preview_rows) == 3 and tab.preview_table.rowCount() == 3, tab.log.toPlainText()
    for row, clip in enumerate(tab.preview_rows):
        assert clip["true"] in classes and len(clip["top"]) == 3
        assert {entry["class"] for entry in clip["top"]} <= classes
        assert tab.preview_table.item(row, 0).text() == clip["name"]
        assert tab.preview_table.item(row, 2).text().count("%") == 3
    assert tab.preview_status.text().startswith("3 clips: 3 labeled")
    assert not (tab.run_dir() / "labels.pt").exists()  # a preview writes nothing


@pytest.mark.slow
def test_one_click_job_cancel_in_label_reopen_resume_and_live(
    qtbot, tmp_path, tiny_session, teacher_checkpoint
):
    from gui.app import MainWindow
    from gui.settings import open_settings
    from xmkd.train.label import load_labels

    settings = tmp_path / "settings.ini"
    run = tmp_path / "run"
    window = MainWindow(open_settings(settings))
    qtbot.addWidget(window)
    tab = window.distill
    _students_form(tab, tiny_session, run)
    _kind(tab.teacher, "xmkd")
    tab.teacher.checkpoint.setText(str(teacher_checkpoint))
    tab.teacher.extra.setText("--batch-size 1")  # a progress event per clip: cancel mid-way
    tab.export_when_done.setChecked(True)
    # the dynamo exporter takes ~15 s for what torchscript does in 3 (both are checked by
    # ONNX Runtime against PyTorch); the export itself is the engines part's test
    tab.export_extra.setText("--exporter torchscript --opset 17")

    tab.start_button.click()
    assert tab.pipeline.is_running() and tab.job_kind == "label"
    assert tab.stages.statuses["label"] == "running"
    wait_until(
        qtbot,
        lambda: any(e.get("event") == "progress" and e["done"] > 0 for e in tab.label_events),
        60,
        "the first labeled clip",
    )
    assert "labeling: " in tab.progress.format()
    tab.cancel_button.click()  # SIGINT: xmkd label keeps the clips it labeled
    wait_until(qtbot, lambda: not tab.pipeline.is_running(), 30, "label cancelled")
    assert tab.stages.statuses == {"label": "cancelled", "distill": "pending", "export": "pending"}
    assert "xmkd label: cancelled" in tab.error.text()
    partial = len(load_labels(run / "labels.pt"))
    assert 0 < partial < 24
    stored = json.loads((run / "pipeline.json").read_text())
    assert [(s["name"], s["status"]) for s in stored["stages"]] == [
        ("label", "cancelled"), ("distill", "pending"), ("export", "pending")
    ]  # fmt: skip
    tab.start_button.click()  # a new job would overwrite this one: refused
    assert not tab.pipeline.is_running() and "already holds a run" in tab.error.text()
    window.close()  # settings saved; the job's state stays in the run folder

    window = MainWindow(open_settings(settings))  # the app opened again
    qtbot.addWidget(window)
    tab = window.distill
    assert tab.out_dir.text() == str(run) and tab.resume_button.isEnabled()
    assert tab.stages.statuses["label"] == "cancelled"
    tab.resume_button.click()
    assert tab.pipeline.is_running() and tab.job_kind == "label"
    wait_until(qtbot, lambda: not tab.pipeline.is_running(), 180, "the resumed job")
    state = jobs.PipelineState.load(run)
    assert state.complete(), tab.error.text() + "\n" + tab.log.toPlainText()[-3000:]
    assert tab.stages.statuses == {"label": "done", "distill": "done", "export": "done"}

    done = next(e for e in tab.label_events if e.get("event") == "done")
    assert done["labeled_now"] == 24 - partial  # only the clips it had not labeled
    assert done["labeled"] == 24 and len(load_labels(run / "labels.pt")) == 24
    assert any(e.get("event") == "epoch" and e["epoch"] == 1 for e in tab.events)
    model = run / "best.onnx"
    assert model.is_file() and tab.progress.format() == "done: best.onnx offered in the Live tab"
    live = window.live
    assert live.model_path.text() == str(model.resolve())
    assert live.models.currentData() == str(model.resolve())
    assert not tab.resume_button.isEnabled() and tab.export_button.isEnabled()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clip", "xclip"])
def test_open_vocabulary_teacher_labels_typed_actions_then_cancel_in_distill(
    qtbot, tmp_path, tiny_session, kind
):
    """A tiny local CLIP / X-CLIP labels the clips with the typed action names as its classes;
    the job is then cancelled in its distill stage (the stages after labeling are the
    teacher-agnostic ones the TSN job above runs to the end)."""
    from tests.tiny_hf import make_tiny_clip, make_tiny_xclip
    from xmkd.train.label import load_labels

    model_dir = (make_tiny_clip if kind == "clip" else make_tiny_xclip)(tmp_path / kind)
    run = tmp_path / "run"
    tab = DistillTab()
    qtbot.addWidget(tab)
    _students_form(tab, tiny_session, run)
    tab.export_when_done.setChecked(False)
    _kind(tab.teacher, kind)
    tab.teacher.hf_model.setText(str(model_dir))
    actions = ["drink water", "wave hand", "sit down"]
    tab.teacher.actions.setText(", ".join(actions))
    tab.start_button.click()
    assert tab.stages.statuses == {"label": "running", "distill": "pending", "export": "skipped"}
    wait_until(qtbot, lambda: tab.job_kind == "distill", 120, "the label stage")
    assert tab.stages.statuses == {"label": "done", "distill": "running", "export": "skipped"}
    done = next(e for e in tab.label_events if e.get("event") == "done")
    assert done["labeled"] + done["no_label"] == 24
    cache = load_labels(run / "labels.pt")
    assert cache.class_names == actions and len(cache) == 24
    assert f"--labels {run / 'labels.pt'}" in tab.log.toPlainText()

    tab.cancel_button.click()
    wait_until(qtbot, lambda: not tab.pipeline.is_running(), 60, "distill cancelled")
    assert tab.stages.statuses == {"label": "done", "distill": "cancelled", "export": "skipped"}, (
        tab.log.toPlainText()[-3000:]
    )
    assert "xmkd distill: cancelled" in tab.error.text() and tab.resume_button.isEnabled()


@pytest.mark.slow
def test_record_then_name_the_actions_then_one_click_to_a_live_model(qtbot, tmp_path):
    """A new lab's whole path in the app: record an unlabeled session from the synthetic source
    in the Record tab, name the actions for a (tiny, local) CLIP teacher in the Distill tab, run
    label -> distill -> export in one click, and find the model offered in the Live tab."""
    from gui.app import MainWindow
    from gui.record_tab import MODES
    from gui.settings import open_settings
    from tests.tiny_hf import make_tiny_clip
    from xmkd.recordings import Session
    from xmkd.train.label import load_labels

    window = MainWindow(open_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    record = window.record
    session = tmp_path / "recordings" / "lab"
    record.session_dir.setText(str(session))
    record.flow.setChecked(False)
    record.picker.kind.setCurrentIndex(0)  # synthetic
    record.mode.setCurrentText(next(t for t, m in MODES.items() if m == "continuous"))
    record.clip_seconds.setValue(1.0)
    record.record_button.click()
    wait_until(qtbot, lambda: record.recorder is not None, 20, "recorder started")
    wait_until(qtbot, lambda: record.clips.count() >= 3, 60, "three clips recorded")
    record.stop_button.click()
    wait_until(qtbot, lambda: not record.is_running(), 30, "recording finished")
    names = [c.name for c in Session.open(session).clips]
    assert len(names) >= 3 and all(n.endswith("A000") for n in names)  # unlabeled

    tab = window.distill
    run = tmp_path / "run"
    _students_form(tab, session, run)
    tab.split.setCurrentText("all")  # own recordings belong to no benchmark split
    _kind(tab.teacher, "clip")
    tab.teacher.hf_model.setText(str(make_tiny_clip(tmp_path / "clip")))
    actions = ["wave hand", "sit down"]
    tab.teacher.actions.setText(", ".join(actions))
    tab.export_when_done.setChecked(True)
    tab.export_extra.setText("--exporter torchscript --opset 17")
    tab.start_button.click()
    wait_until(qtbot, lambda: not tab.pipeline.is_running(), 240, "the one-click job")
    assert tab.stages.statuses == {"label": "done", "distill": "done", "export": "done"}, (
        tab.error.text() + "\n" + tab.log.toPlainText()[-3000:]
    )
    cache = load_labels(run / "labels.pt")
    assert cache.class_names == actions and sorted(cache.names) == sorted(names)
    model = (run / "best.onnx").resolve()
    assert window.live.model_path.text() == str(model)
