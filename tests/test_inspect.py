"""`xmkd inspect` on every kind of file xmkd reads: sessions, packed NTU, checkpoints, teacher
labels, ONNX models (the .skeleton inspector is covered in test_ntu_format.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xmkd.cli import main

CLASSES = [f"action {i}" for i in range(6)]


def _inspect(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def students_checkpoint(tmp_path_factory) -> Path:
    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    torch.manual_seed(0)
    students = [
        ("stgcn", {"width": 0.125}, build_student("stgcn", 6, width=0.125)),
        ("hcn", {"width": 0.125}, build_student("hcn", 6, width=0.125)),
    ]
    spec = default_input_spec("hcn", num_persons=1)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    payload = make_checkpoint(
        "students",
        students,
        CLASSES,
        spec.to_dict(),
        config={"epochs": 12, "supervision": "ce"},
        extra={"epoch": 7, "val": {"student0": 0.5, "ensemble_mean": 0.625}},
    )
    save_checkpoint(path, payload)
    return path


def test_inspect_a_session(tiny_session, capsys):
    code, out, _ = _inspect(capsys, str(tiny_session))
    assert code == 0, out
    assert f"{tiny_session}: xmkd recording session (source synthetic" in out
    assert "72 clips, 2304 frames, 115.2 s at 20 fps; cameras 1, 2" in out
    assert "video for 72 of 72 clips, optical flow for 72, timestamps for 72" in out
    assert "clips per split: student_train 24, teacher_train 24, test 24" in out
    assert "drink water 12" in out
    code, out, _ = _inspect(capsys, str(tiny_session), "--json")
    data = json.loads(out)
    assert data["kind"] == "session" and data["clips"] == 72 and data["fps"] == 20.0
    assert sum(data["labels"].values()) == 72 and len(data["labels"]) == 6
    assert sum(data["bodies_per_clip"].values()) == 72 and data["problems"] == []


def test_inspect_a_damaged_session_reports_instead_of_stopping(tiny_session, tmp_path, capsys):
    import shutil

    copy = tmp_path / "session"
    shutil.copytree(tiny_session, copy, ignore=shutil.ignore_patterns("rgb", "flow"))
    first = sorted((copy / "skeletons").glob("*.skeleton"))[0]
    first.unlink()
    (copy / "partial" / "S001C001P001R009A001").mkdir(parents=True)
    code, out, _ = _inspect(capsys, str(copy))
    assert code == 0, out
    assert "video for 0 of 72 clips, optical flow for 0" in out
    assert f"partial/ holds 1 unfinished clip(s): run xmkd recover {copy}" in out
    assert "1 problem(s):" in out and first.stem in out


def test_inspect_a_packed_ntu_folder(tiny_session, tmp_path, capsys):
    from xmkd.ntu.pack import pack_ntu

    packed = tmp_path / "packed"
    pack_ntu(tiny_session / "skeletons", packed, workers=1, progress=False)
    code, out, _ = _inspect(capsys, str(packed))
    assert code == 0, out
    assert "packed NTU RGB+D (xsub60, body selection motion, 60 classes" in out
    assert "  test: 24 samples, 6 classes present, 32-32 frames per file" in out
    data = json.loads(_inspect(capsys, str(packed), "--json")[1])
    assert data["kind"] == "packed-ntu" and data["parts"]["student_train"]["samples"] == 24


def test_inspect_a_students_checkpoint(students_checkpoint, capsys):
    code, out, _ = _inspect(capsys, str(students_checkpoint))
    assert code == 0, out
    assert "xmkd students checkpoint (version 1" in out
    assert "2 model(s): stgcn {'width': 0.125}, hcn {'width': 0.125}; ensemble mean" in out
    assert "6 classes: action 0, action 1" in out and "window 32" in out
    assert "trained: epoch 7 of 12, supervision ce; weights only" in out
    assert "validation top-1: student0 50.00%, ensemble_mean 62.50%" in out
    assert out.count("weights digest ok") == 2
    data = json.loads(_inspect(capsys, str(students_checkpoint), "--json")[1])
    assert data["kind"] == "students-checkpoint" and [m["arch"] for m in data["models"]] == [
        "stgcn",
        "hcn",
    ]
    assert data["input_spec"]["window"] == 32 and data["epoch"] == 7


def test_inspect_shows_a_digest_mismatch_and_never_unpickles(students_checkpoint, tmp_path, capsys):
    from xmkd.checkpoint import safe_torch_load

    data = safe_torch_load(students_checkpoint)
    key = next(iter(data["models"][1]["state_dict"]))
    data["models"][1]["state_dict"][key] = data["models"][1]["state_dict"][key] + 1.0
    flipped = tmp_path / "flipped.pt"
    torch.save(data, flipped)
    code, out, _ = _inspect(capsys, str(flipped))
    assert code == 0, out
    assert "model 0:" in out and "weights digest ok" in out
    assert "model 1:" in out and "weights digest MISMATCH" in out

    import os
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    code, _, err = _inspect(capsys, str(evil))
    assert code == 2 and not marker.exists()
    assert len(err.strip().splitlines()) == 1 and "cannot be loaded safely" in err


def test_inspect_a_teacher_label_cache(tmp_path, capsys):
    from xmkd.train.label import TeacherLabels

    logits = torch.zeros(4, 6)
    logits[torch.arange(4), torch.tensor([0, 1, 2, 5])] = 1.0
    path = tmp_path / "labels.pt"
    TeacherLabels(
        names=[f"S001C001P002R001A00{a}" for a in (1, 2, 3, 4)],
        logits=logits,
        class_names=CLASSES,
        modality="rgbdiff",
        teacher="runs/teacher/teacher.pt",
        targets=torch.tensor([0, 1, 2, 3]),
    ).save(path)
    code, out, _ = _inspect(capsys, str(path))
    assert code == 0, out
    assert "teacher-label cache (xmkd label) from runs/teacher/teacher.pt (rgbdiff)" in out
    assert "4 clips, 6 classes; 4 clips carry a ground-truth action" in out
    assert "teacher right on 75.00% of them" in out
    data = json.loads(_inspect(capsys, str(path), "--json")[1])
    assert data["kind"] == "teacher-labels" and data["teacher_accuracy"] == 0.75
    assert data["no_label"] == 0 and data["class_map"] is None
    # through a class map, with clips left without a label
    mapped = tmp_path / "mapped.pt"
    TeacherLabels(
        names=[f"S001C001P002R001A00{a}" for a in (1, 2, 3, 4)],
        logits=torch.zeros(4, 2),
        class_names=["greet", "sit"],
        teacher="torchvision:r3d_18",
        no_label=["S001C001P002R001A003"],
        extra={"teacher_kind": "torchvision", "teacher_classes": ["x"] * 400,
               "class_map": {"actions": []}, "min_confidence": 0.4, "background": False},
    ).save(mapped)  # fmt: skip
    out = _inspect(capsys, str(mapped))[1]
    assert "classes: greet, sit" in out
    assert "through a class map from the teacher's 400 classes" in out
    assert "clips below confidence 0.4: no label (left out of distill)" in out
    assert "1 of 4 clips have no label" in out


def _onnx_model(path: Path, metadata: dict | None) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("skeleton", TensorProto.FLOAT, ["batch", 3, 16, 25, 1])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3, 16, 25, 1])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["skeleton"], ["probs"])], "g", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if metadata is not None:
        helper.set_model_props(model, {"xmkd": json.dumps(metadata)})
    onnx.save(model, str(path))
    return path


def test_inspect_an_onnx_model(tmp_path, capsys):
    meta = {
        "window": 16,
        "dynamic_window": True,
        "ensemble": "mean",
        "students": 2,
        "precision": "fp32",
        "archs": ["stgcn", "stgcn"],
        "class_names": CLASSES,
        "checkpoint": "runs/students/best.pt",
        "parity": {"precision": "fp32", "tolerance": 1e-4, "random_max_abs_diff": 3e-8},
    }
    path = _onnx_model(tmp_path / "model.onnx", meta)
    code, out, _ = _inspect(capsys, str(path))
    assert code == 0, out
    assert "ONNX model (" in out and "opset ai.onnx 18, 1 nodes" in out
    assert "input skeleton: ['batch', 3, 16, 25, 1]" in out
    assert "ensemble mean, fp32, window 16 (dynamic), 6 classes" in out
    assert "exported from runs/students/best.pt" in out
    assert "max |diff| random windows 3.00e-08, real windows not checked" in out
    data = json.loads(_inspect(capsys, str(path), "--json")[1])
    assert data["kind"] == "onnx" and data["opset"] == {"ai.onnx": 18}
    assert data["xmkd"]["class_names"] == CLASSES
    bare = _onnx_model(tmp_path / "bare.onnx", None)
    assert "no xmkd metadata" in _inspect(capsys, str(bare))[1]


def test_inspect_bad_files_are_one_sentence(tmp_path, capsys):
    pytest.importorskip("onnx")
    good = _onnx_model(tmp_path / "model.onnx", {})
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:40])
    code, _, err = _inspect(capsys, str(truncated))
    assert code == 2 and "truncated.onnx: is not a valid ONNX model" in err
    assert len(err.strip().splitlines()) == 1
    folder = tmp_path / "folder"
    folder.mkdir()
    code, _, err = _inspect(capsys, str(folder))
    assert code == 2 and "cannot tell what" in err and "recording session folders" in err
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    code, _, err = _inspect(capsys, str(foreign))
    assert code == 2 and "neither an xmkd checkpoint nor a teacher-label file" in err
