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
