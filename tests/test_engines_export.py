"""ONNX export of students and ensembles: parity with PyTorch, dynamic axes, FP16 conversion."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from engines.export import (
    Ensemble,
    check_parity,
    combine_probabilities,
    export_checked,
    export_onnx,
    random_windows,
    read_metadata,
    real_windows,
    write_float16,
)
from xmkd.errors import XmkdError
from xmkd.models import build_student
from xmkd.preprocess import default_input_spec

torch.set_num_threads(1)


def sharp(model: nn.Module, seed: int) -> nn.Module:
    """A small student with He-initialised convs so its probabilities are far from uniform
    (the reference init makes an untrained ST-GCN output ~1/C everywhere, hiding differences)."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model.eval()


def stgcn(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return sharp(build_student("stgcn", classes, width=0.125), seed)


def hcn(seed: int = 0, classes: int = 10, window: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return sharp(build_student("hcn", classes, width=0.125, window_size=window), seed)


def input_dims(path) -> list:
    model = onnx.load(str(path))
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in model.graph.input[0].type.tensor_type.shape.dim
    ]


def test_combine_probabilities_rules():
    from xmkd.evaluate import ensemble_probs

    probs = torch.tensor([[[0.7, 0.3]], [[0.2, 0.8]]])
    for rule in ("mean", "max"):  # the same rule as xmkd eval's
        assert np.allclose(combine_probabilities(probs, rule), ensemble_probs(probs.numpy(), rule))
    assert torch.allclose(combine_probabilities(probs, "mean"), torch.tensor([[0.45, 0.55]]))
    assert torch.allclose(combine_probabilities(probs, "max"), torch.tensor([[0.7, 0.8]]))
    with pytest.raises(XmkdError, match="ensemble rule"):
        combine_probabilities(probs, "median")


def test_stgcn_export_parity_dynamic_batch_and_window(tmp_path, any_ntu_samples):
    model = stgcn()
    spec = default_input_spec("stgcn", window=48, fit="resize", center="frame")
    real = real_windows(any_ntu_samples, spec)
    assert real.shape == (len(any_ntu_samples), 3, 48, 25, 2) and np.abs(real).max() > 0.1
    result = export_checked(
        model,
        tmp_path / "st.onnx",
        48,
        exporter="torchscript",
        real_inputs=real,
        metadata={"class_names": [str(i) for i in range(10)]},
    )
    dims = input_dims(result.path)
    assert isinstance(dims[0], str) and isinstance(dims[2], str), dims  # batch, window symbolic
    assert dims[1] == 3 and dims[3] == 25 and dims[4] == 2
    parity = result.parity
    assert parity.passed and parity.real_windows == len(any_ntu_samples)
    assert parity.random_max_abs_diff < 1e-4 and parity.real_max_abs_diff < 1e-4
    # Shapes other than the export's were run: the dynamic axes really are dynamic.
    assert {tuple(s) for s in parity.random_shapes} >= {(1, 3, 48, 25, 2), (3, 3, 97, 25, 2)}
    info = read_metadata(result.path)
    assert info["dynamic_window"] and info["class_names"][3] == "3" and info["parity"]


def test_parity_check_catches_a_different_model(tmp_path):
    path = export_onnx(stgcn(0), tmp_path / "a.onnx", 32, exporter="torchscript").path
    inputs = random_windows(32, True, True)
    assert check_parity(stgcn(0), path, inputs).passed
    with pytest.raises(XmkdError, match="disagrees with PyTorch"):
        check_parity(stgcn(1), path, inputs)


def test_hcn_export_fixes_the_window(tmp_path, generated_ntu_samples):
    model = hcn()
    # centre crop, resize to 32
    real = real_windows(generated_ntu_samples, default_input_spec("hcn"))
    result = export_checked(
        model, tmp_path / "hcn.onnx", 32, exporter="torchscript", real_inputs=real
    )
    assert result.parity.real_max_abs_diff < 1e-4 and result.parity.real_windows == 5
    assert not result.dynamic_window and result.dynamic_batch
    dims = input_dims(result.path)
    assert dims[2] == 32 and isinstance(dims[0], str)
    assert result.parity.random_max_abs_diff < 1e-4
    with pytest.raises(XmkdError, match="windows of 32 frames"):
        export_onnx(model, tmp_path / "bad.onnx", 64, exporter="torchscript")
    with pytest.raises(XmkdError, match="cannot be dynamic"):
        export_onnx(model, tmp_path / "bad.onnx", 32, dynamic_window=True, exporter="torchscript")


def test_two_student_ensemble_dynamo_export(tmp_path):
    """torch's default (dynamo) exporter, dynamic batch and window, mean of two students."""
    students = [stgcn(0), stgcn(1)]
    ensemble = Ensemble(students, "mean")
    result = export_checked(ensemble, tmp_path / "ens.onnx", 32, exporter="dynamo")
    assert result.opset == 18 and result.dynamic_window
    assert result.parity.max_abs_diff < 1e-4
    x = torch.randn(2, 3, 32, 25, 2) * 0.5
    with torch.no_grad():
        single = [s(x).softmax(-1) for s in students]
        assert torch.allclose(ensemble(x), (single[0] + single[1]) / 2, atol=1e-6)
        # The two students disagree, so the ensemble is not either one of them.
        assert (single[0] - single[1]).abs().max() > 1e-2


def test_max_rule_ensemble_with_mixed_architectures(tmp_path):
    ensemble = Ensemble([hcn(0), stgcn(1)], "max")
    assert ensemble.fixed_window == 32
    result = export_checked(ensemble, tmp_path / "mix.onnx", 32, exporter="torchscript")
    assert not result.dynamic_window and result.parity.passed
    with pytest.raises(XmkdError, match="different windows"):
        _ = Ensemble([hcn(0, window=32), hcn(1, window=48)]).fixed_window


def test_opset_rules(tmp_path):
    with pytest.raises(XmkdError, match="too old"):
        export_onnx(stgcn(), tmp_path / "x.onnx", 32, opset=16, exporter="torchscript")
    with pytest.raises(XmkdError, match="torchscript for opset 17"):
        export_onnx(stgcn(), tmp_path / "x.onnx", 32, opset=17, exporter="dynamo")
    result = export_onnx(stgcn(), tmp_path / "x17.onnx", 32, opset=17, exporter="torchscript")
    model = onnx.load(str(result.path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert "Einsum" in {n.op_type for n in model.graph.node}  # needs opset >= 12


def test_float16_conversion_keeps_io_and_resize_scales(tmp_path):
    """HCN's motion stream upsamples with Resize, whose scales must stay float32."""
    model = hcn()
    fp32 = export_onnx(model, tmp_path / "h.onnx", 32, exporter="torchscript").path
    fp16 = write_float16(fp32, tmp_path / "h16.onnx")
    proto = onnx.load(str(fp16))
    floats = {t.name: t.data_type for t in proto.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in floats.values()
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    resize = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert resize
    for node in resize:
        for name in node.input[1:]:
            if name in floats:
                assert floats[name] == onnx.TensorProto.FLOAT
    assert read_metadata(fp16)["precision"] == "fp16"
    inputs = random_windows(32, True, False)
    report = check_parity(model, fp16, inputs, precision="fp16")
    assert report.passed and report.max_abs_diff > 0  # really computed in half precision
    with pytest.raises(XmkdError, match="disagrees"):
        check_parity(model, fp16, inputs, precision="fp16", tolerance=1e-9)


# --- bad models and bad files: NaN-aware parity, no unchecked file left, one-sentence errors ----


def test_parity_fails_on_nan_outputs(tmp_path):
    """NaN compares false with everything: the old check reported "0.00e+00 ok" for a model
    whose every output was NaN."""
    good = stgcn(0)
    path = export_onnx(good, tmp_path / "m.onnx", 16, exporter="torchscript").path
    broken = stgcn(0)
    with torch.no_grad():
        broken.fcn.bias.fill_(float("nan"))
    inputs = random_windows(16, True, True)
    report = check_parity(broken, path, inputs, raise_on_failure=False)
    assert not report.passed and report.nonfinite_outputs > 0
    assert "NaN or infinite outputs" in report.summary() and "FAILED" in report.summary()
    with pytest.raises(XmkdError, match="disagrees with PyTorch"):
        check_parity(broken, path, inputs)


def test_export_refuses_nan_weights(tmp_path):
    model = stgcn(0)
    with torch.no_grad():
        model.fcn.weight[0, 0] = float("nan")
    with pytest.raises(XmkdError, match=r"weight '.*fcn.weight' holds NaN or infinite values"):
        export_checked(model, tmp_path / "nan.onnx", 16, exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_failed_parity_leaves_no_file(tmp_path, monkeypatch):
    import engines.export as export

    monkeypatch.setitem(export.TOLERANCE, "fp32", -1.0)  # nothing can pass
    for fp16 in (False, True):
        with pytest.raises(XmkdError, match="disagrees with PyTorch"):
            export_checked(stgcn(0), tmp_path / "m.onnx", 16, exporter="torchscript", fp16=fp16)
        assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("truncated", lambda raw: raw[: len(raw) // 3]),
        ("random", lambda raw: np.random.default_rng(0).bytes(4096)),
        ("empty", lambda raw: b""),
        ("text", lambda raw: b"not a model\n" * 10),
    ],
)
def test_unreadable_onnx_is_one_sentence(tmp_path, kind, make):
    from engines.backends import ModelSource

    good = export_onnx(stgcn(0), tmp_path / "good.onnx", 16, exporter="torchscript").path
    bad = tmp_path / f"{kind}.onnx"
    bad.write_bytes(make(good.read_bytes()))
    for call in (read_metadata, ModelSource.from_onnx, ModelSource.from_file):
        with pytest.raises(XmkdError, match=rf"{kind}.onnx: (is not a readable ONNX model|has no)"):
            call(bad)


def test_onnx_without_metadata_nan_weights_or_failed_parity_is_refused(tmp_path):
    from engines.backends import ModelSource
    from engines.export import _set_file_metadata

    spec = default_input_spec("stgcn", window=16).to_dict()
    meta = {"class_names": [f"c{i}" for i in range(10)], "input_spec": spec}
    result = export_checked(stgcn(0), tmp_path / "ok.onnx", 16, exporter="torchscript",
                            metadata=meta)  # fmt: skip
    assert ModelSource.from_onnx(result.path).class_names == meta["class_names"]
    plain = onnx.load(str(result.path))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(XmkdError, match="plain.onnx: has no xmkd metadata"):
        ModelSource.from_onnx(tmp_path / "plain.onnx")
    nan = onnx.load(str(result.path))
    weight = next(t for t in nan.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] = np.nan
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(nan, str(tmp_path / "nan.onnx"))
    with pytest.raises(XmkdError, match=r"nan.onnx: weight '.*' holds NaN or infinite values"):
        ModelSource.from_onnx(tmp_path / "nan.onnx")
    failed = tmp_path / "failed.onnx"
    failed.write_bytes(result.path.read_bytes())
    _set_file_metadata(failed, {"parity": {**read_metadata(failed)["parity"],
                                           "random_max_abs_diff": 0.5}})  # fmt: skip
    with pytest.raises(XmkdError, match="failed.onnx: its export failed .*the parity check"):
        ModelSource.from_onnx(failed)


def test_changed_onnx_weights_fail_the_stored_digest(tmp_path):
    """A weight changed after export (a flipped bit, a finite value) runs silently without the
    digest; with it the file is refused in one sentence. Files without a digest still load."""
    from engines.backends import ModelSource

    spec = default_input_spec("stgcn", window=16).to_dict()
    meta = {"class_names": [f"c{i}" for i in range(10)], "input_spec": spec}
    result = export_checked(stgcn(0), tmp_path / "ok.onnx", 16, exporter="torchscript",
                            metadata=meta)  # fmt: skip
    assert len(read_metadata(result.path)["weights_sha256"]) == 64
    changed = onnx.load(str(result.path))
    weight = next(t for t in changed.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    array = onnx.numpy_helper.to_array(weight).copy()
    array.view(np.uint32).flat[0] ^= 1 << 20  # one flipped mantissa bit: still finite
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(changed, str(tmp_path / "changed.onnx"))
    with pytest.raises(XmkdError, match="changed.onnx: weights do not match their stored digest"):
        ModelSource.from_onnx(tmp_path / "changed.onnx")
    info = read_metadata(result.path)
    del info["weights_sha256"]
    older = onnx.load(str(tmp_path / "changed.onnx"))
    next(m for m in older.metadata_props if m.key == "xmkd").value = json.dumps(info)
    onnx.save(older, str(tmp_path / "older.onnx"))
    assert ModelSource.from_onnx(tmp_path / "older.onnx").class_names == meta["class_names"]


def test_cached_export_is_checked_before_reuse(tmp_path, monkeypatch):
    """A cached ONNX whose parity failed, that is corrupt or made from other weights is exported
    again instead of being run."""
    from engines.backends import ModelSource
    from engines.export import _set_file_metadata, cached_export_ok
    from xmkd.checkpoint import make_checkpoint, save_checkpoint

    monkeypatch.setenv("XMKD_CACHE", str(tmp_path / "cache"))
    spec = default_input_spec("stgcn", window=16)
    ckpt = tmp_path / "students.pt"
    classes = [f"c{i}" for i in range(10)]
    save_checkpoint(ckpt, make_checkpoint("students", [("stgcn", {"width": 0.125}, stgcn(0))],
                                          classes, spec.to_dict()))  # fmt: skip
    source = ModelSource.from_checkpoint(ckpt)
    source.exporter = "torchscript"
    cached = source.onnx_file()
    key = read_metadata(cached)["cache_key"]
    assert cached_export_ok(cached, key)
    for spoil in ("parity", "corrupt", "key"):
        if spoil == "parity":
            _set_file_metadata(cached, {"parity": {**read_metadata(cached)["parity"],
                                                   "nonfinite_outputs": 3}})  # fmt: skip
        elif spoil == "corrupt":
            cached.write_bytes(cached.read_bytes()[:1000])
        else:
            _set_file_metadata(cached, {"cache_key": "another checkpoint"})
        assert not cached_export_ok(cached, key)
        again = ModelSource.from_checkpoint(ckpt)
        again.exporter = "torchscript"
        assert again.onnx_file() == cached
        assert cached_export_ok(cached, key), spoil  # exported again, checked
