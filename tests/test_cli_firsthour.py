"""The first hour of a new user (issue 9, section 6): the README's training commands pick a preset
that fits the data and say so, `xmkd gui` names the missing system libraries, `xmkd live` with a
checkpoint says that it exports ONNX, `xmkd demo` reports where its time went."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from xmkd.cli import main


def _recorded_session(root: Path, source: str = "azure-kinect") -> Path:
    """An empty session folder as the recorder writes it (no clips needed to choose a preset)."""
    from xmkd.recordings import make_session_dirs, new_session_info, write_session_json

    make_session_dirs(root)
    write_session_json(root, new_session_info(source, versions={"xmkd": "test"}))
    return root


# --- preset chosen from the data ---------------------------------------------------------------


def test_choose_preset_from_the_data(tmp_path, tiny_session):
    from xmkd.commands._train_common import choose_preset

    preset, why = choose_preset(None, [str(tiny_session)])
    assert preset == "synthetic" and str(tiny_session) in why and "synthetic" in why
    kinect = _recorded_session(tmp_path / "kinect")
    preset, why = choose_preset(None, [str(tiny_session), str(kinect)])
    assert preset == "paper" and "azure-kinect" in why
    assert choose_preset(None, [], str(tmp_path / "packed"))[0] == "paper"
    assert choose_preset("paper", [str(tiny_session)]) == ("paper", "given with --preset")


def test_teacher_train_as_the_readme_shows_it_uses_the_synthetic_preset(
    tmp_path, tiny_session, monkeypatch, capsys
):
    """`xmkd teacher train --sessions S --out R` on synthetic sessions trained with the paper's
    recipe (80 epochs of 224x224 ResNet-18: 32 min on the tiny data)."""
    import xmkd.train.teacher as teacher

    seen = {}

    def fake_train(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        return SimpleNamespace(path=tmp_path / "teacher.pt", student_train_accuracy=0.5)

    monkeypatch.setattr(teacher, "train_teacher", fake_train)
    args = ["teacher", "train", "--sessions", str(tiny_session), "--out", str(tmp_path / "t")]
    assert main(args) == 0
    cfg = seen["cfg"]
    assert cfg.crop_size == 64 and cfg.epochs == 30
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("preset synthetic (chosen from the data: ")
    assert "30 epochs" in first
    # an explicit preset still wins, and the line says it was given
    assert main([*args, "--preset", "paper", "--epochs", "2"]) == 0
    assert seen["cfg"].crop_size == 224 and seen["cfg"].epochs == 2
    assert "preset paper (given with --preset), 2 epochs" in capsys.readouterr().out


def test_distill_as_the_readme_shows_it_uses_the_synthetic_preset(
    tmp_path, tiny_session, monkeypatch, capsys
):
    import xmkd.train.distill as distill

    seen = {}

    def fake_train(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        return SimpleNamespace()

    monkeypatch.setattr(distill, "train_students", fake_train)
    monkeypatch.setattr(distill, "run_summary", lambda result: "done")
    args = ["distill", "--sessions", str(tiny_session), "--out", str(tmp_path / "s")]
    assert main([*args, "--supervision", "full"]) == 0
    cfg = seen["cfg"]
    assert cfg.resolved_epochs() == 12 and cfg.kwargs_for(0)["width"] == 0.25
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("preset synthetic (chosen from the data: ")
    assert "12 epochs" in first and "stgcn,stgcn" in first
    # with JSON-lines progress on stdout the start line goes to stderr
    assert main([*args, "--supervision", "full", "--progress-json", "-"]) == 0
    out, err = capsys.readouterr()
    assert "preset synthetic" in err and "preset" not in out


# --- xmkd gui on a minimal Linux -----------------------------------------------------------------


def test_gui_names_the_missing_xcb_packages(monkeypatch, capsys):
    """Qt aborted with a message about xcb-cursor while libxcb-icccm4 and libxcb-keysyms1 were
    what was missing; the command now checks first and names the packages."""
    pytest.importorskip("PySide6.QtWidgets")
    pytest.importorskip("pyqtgraph")
    import gui.app
    import xmkd.commands.gui as gui_command

    missing = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    monkeypatch.setattr(gui_command, "_loadable", lambda soname: soname not in missing)
    monkeypatch.setattr(gui.app, "main", lambda **kwargs: 0)  # never open a window here
    monkeypatch.setattr(gui_command.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    assert main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1 " in err
    assert "libxcb-cursor0" not in err and len(err.strip().splitlines()) == 1
    # nothing missing: the app starts
    monkeypatch.setattr(gui_command, "_loadable", lambda soname: True)
    assert main(["gui"]) == 0


def test_gui_display_check():
    from xmkd.commands.gui import XCB_LIBRARIES, check_display
    from xmkd.errors import XmkdError

    everything = {"DISPLAY": ":0"}
    check_display(everything, lambda s: True, "linux")
    with pytest.raises(XmkdError, match="neither DISPLAY nor WAYLAND_DISPLAY is set"):
        check_display({}, lambda s: True, "linux")
    with pytest.raises(XmkdError, match=r"sudo apt install libxcb-cursor0 \("):
        check_display(everything, lambda s: s != "libxcb-cursor.so.0", "linux")
    with pytest.raises(XmkdError, match="QT_QPA_PLATFORM=offscreen"):
        check_display({"QT_QPA_PLATFORM": "xcb"}, lambda s: True, "linux")
    # other platforms, Wayland, offscreen and other OSes are Qt's business
    nothing = {s: False for s in XCB_LIBRARIES}.get
    check_display({"QT_QPA_PLATFORM": "offscreen"}, nothing, "linux")
    check_display({"WAYLAND_DISPLAY": "wayland-0"}, nothing, "linux")
    check_display({}, nothing, "win32")


# --- xmkd live with a checkpoint: the ONNX export is announced ------------------------------------


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    import torch

    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    students = [("stgcn", {"width": 0.125}, build_student("stgcn", 6, width=0.125))]
    spec = default_input_spec("stgcn", window=16, fit="resize", center="frame", num_persons=1)
    path = tmp_path_factory.mktemp("ckpt") / "students.pt"
    classes = [f"action {i}" for i in range(6)]
    save_checkpoint(path, make_checkpoint("students", students, classes, spec.to_dict()))
    return path


def test_live_with_a_checkpoint_announces_the_onnx_export(
    small_checkpoint, tiny_session, tmp_path, monkeypatch, capsys
):
    """`xmkd live --checkpoint X.pt --engine onnxruntime` was silent for 25-30 s while it
    exported the checkpoint; it now says what it does, with the stages, and how long it took."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setenv("XMKD_CACHE", str(tmp_path / "cache"))
    sample = sorted((tiny_session / "skeletons").glob("*.skeleton"))[0]
    args = [
        "live",
        "--checkpoint",
        str(small_checkpoint),
        "--source",
        f"ntu:{sample}?realtime=0&video=0",
        "--engine",
        "onnxruntime",
    ]
    assert main(args) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith(f"exporting {small_checkpoint} to ONNX for onnxruntime (")
    cached = sorted((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and f"once; cached at {cached[0]})" in lines[0]
    assert [line.strip() for line in lines[1:4]] == [
        "tracing ...",
        "writing ...",
        "parity check ...",
    ]
    assert lines[4].startswith("exported in ") and "engine onnxruntime-cpu" in out
    # the second run reuses the cached file, says nothing about exporting, and the estimate
    # of a next export is the time this one took
    assert main(args) == 0
    assert "exporting" not in capsys.readouterr().err
    seconds = float((tmp_path / "cache" / "onnx" / "last-export-seconds").read_text())
    assert seconds > 0


# --- xmkd demo: what it prints is what the README shows ---------------------------------------


def _shape(lines: list[str]) -> list[str]:
    """Lines with numbers (and the README's elided times) replaced: the format, not the values."""
    import re

    out = []
    for line in lines:
        line = re.sub(r"\.\.\.|\d+(\.\d+)?", "N", line)
        out.append(re.sub(r"\s+", " ", line).strip())
    return out


def test_demo_prints_the_readme_table_and_stage_times(tmp_path, tiny_session, capsys):
    """The README's demo output lacked the table's rule line and the teacher line's note, and the
    demo printed only a total time; it now ends with the time of every stage."""
    import re

    import torch

    torch.set_num_threads(1)
    out = tmp_path / "demo"
    args = ["demo", "--sessions", str(tiny_session), "--out", str(out), "--quiet"]
    assert main([*args, "--epochs", "1", "--teacher-epochs", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("teacher (TSN"))
    printed = [line for line in printed[start:] if not line.startswith("students: ")]
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("What `xmkd demo` printed", 1)[1].split("```\n", 2)[1].splitlines()
    block = [line for line in block if not line.startswith("students: ")]
    # the test reuses the session, so the demo generated no data: that stage is not printed
    block = [line for line in block if not line.startswith("synthetic data ")]
    assert _shape(printed) == _shape(block)
    stages = [line.split()[0] for line in printed if re.match(r"^[a-z ]+\s+\d+$", line)]
    assert stages == ["setup", "teacher", "teacher", "distillation", "evaluation", "total"]
    assert printed[-1].endswith(", 1 torch CPU threads")
