"""`xmkd export` and `xmkd live` end to end on a small checkpoint and NTU samples (generated at
test time; the real ones too where ../shared provides them)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import torch

from engines.export import read_metadata
from xmkd.checkpoint import load_students, make_checkpoint, save_checkpoint
from xmkd.cli import main
from xmkd.models import build_student
from xmkd.preprocess import default_input_spec

torch.set_num_threads(1)
CLASSES = [f"A{i:03d}" for i in range(1, 61)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    students = [
        ("stgcn", {"width": 0.125}, build_student("stgcn", 60, width=0.125)),
        ("stgcn", {"width": 0.125}, build_student("stgcn", 60, width=0.125)),
    ]
    # The reference init (conv weights N(0, 0.02)) makes an untrained ST-GCN's probabilities
    # 1/60 to float precision whatever the input, and a parity check of constants proves nothing
    # (its real-window diff was exactly 0): He init gives outputs that depend on the input.
    for _, _, model in students:
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
    spec = default_input_spec("stgcn", window=48, fit="resize", center="frame")
    path = tmp_path_factory.mktemp("ckpt") / "students.pt"
    save_checkpoint(path, make_checkpoint("students", students, CLASSES, spec.to_dict()))
    return path


def test_export_onnx_then_onnxruntime(checkpoint, generated_ntu_samples, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code = main(
        [
            "export",
            str(checkpoint),
            "--out",
            str(out),
            "--exporter",
            "torchscript",
            "--check-data",
            str(generated_ntu_samples[0].parent),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert re.search(r"real windows \d\.\d+e-\d+ \(5 windows\)", text), text
    assert "dynamic: batch, window" in text and out.is_file()
    info = read_metadata(out)
    assert info["class_names"] == CLASSES and info["input_spec"]["window"] == 48
    assert info["parity"]["real_max_abs_diff"] < 1e-4
    import onnxruntime as ort

    students, _ = load_students(checkpoint)
    x = np.random.default_rng(0).standard_normal((2, 3, 48, 25, 2)).astype(np.float32)
    onnx_out = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"skeleton": x}
    )[0]
    with torch.no_grad():
        probs = torch.stack([s(torch.from_numpy(x)).softmax(-1) for s in students]).mean(0)
    assert np.abs(onnx_out - probs.numpy()).max() < 1e-5


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt installed")
def test_export_tensorrt_without_tensorrt_is_one_sentence(checkpoint, tmp_path, capsys):
    code = main(["export", str(checkpoint), "--format", "tensorrt", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "pypi.nvidia.com" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_live_on_an_ntu_sample_prints_predictions(checkpoint, any_ntu_samples, capsys):
    sample = any_ntu_samples[0]  # S001C001P001R001A011, 82 frames
    code = main(
        [
            "live",
            "--checkpoint",
            str(checkpoint),
            "--source",
            f"ntu:{sample}?realtime=0&video=0",
            "--engine",
            "torch",
            "--every",
            "10",
            "--top",
            "3",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    # "--engine torch" runs on the GPU where torch sees one
    engine = "torch-cuda" if torch.cuda.is_available() else "torch-cpu"
    assert f"engine {engine}; 60 classes" in text
    lines = [line for line in text.splitlines() if line.startswith("t=")]
    assert lines, text
    # "t=   2.633s frame    79  A004 0.02, A011 0.02, A021 0.02  [27 ms]"
    last = re.match(r"t=\s*([\d.]+)s frame\s+(\d+)\s+((?:A\d{3} [\d.]+(?:, )?){3})", lines[-1])
    assert last, lines[-1]
    # every 10th frame, and the clip's last frame (81): the prediction scored at the clip's end
    assert int(last.group(2)) == 81
    assert int(re.match(r"t=\s*[\d.]+s frame\s+(\d+)", lines[-2]).group(1)) == 79
    # the checkpoint predates the stream entry: the live path says which default it took
    assert "live window: the last 90 frames" in text and "records no training clip" in text
    assert re.search(r"82 frames in [\d.]+ s, \d+ predictions", text)


def test_live_with_an_unavailable_engine_is_one_sentence(checkpoint, generated_ntu_samples, capsys):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only error")
    code = main(
        [
            "live",
            "--checkpoint",
            str(checkpoint),
            "--source",
            f"ntu:{generated_ntu_samples[0]}",
            "--engine",
            "torch-cuda",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "torch-cuda engine is not available" in err and "Traceback" not in err
