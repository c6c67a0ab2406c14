"""FP32 -> FP16 conversion of an exported ONNX graph (for TensorRT 11, which is always strongly
typed: FP16 compute must be in the graph because the FP16 builder flag is gone).

What it does: float32 initializers, ``Constant``/``ConstantOfShape`` values and ``Cast(to=float)``
become float16; the graph keeps float32 inputs and outputs (a Cast is inserted after each input
and before each output), so callers bind the same tensors as for the FP32 engine. Inputs that
ONNX requires to be float32 whatever the data type (``Resize`` roi/scales, ``Upsample`` scales)
are left alone. Weights beyond the float16 range are clipped to +-65504 instead of becoming inf.

NVIDIA's ModelOpt AutoCast does the same job with per-node accuracy checks; this converter is
enough for the xmkd students (convolutions, BN, einsum, pooling, softmax) and avoids a dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmkd.errors import XmkdError, require

#: Inputs (by op type, input index) that must stay float32 whatever the graph's float type.
FLOAT32_ONLY_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (1, 2), "Upsample": (1,)}
FP16_MAX = float(np.finfo(np.float16).max)


def _onnx() -> Any:
    return require("onnx", "onnx", "FP16 ONNX conversion")


def _to_fp16_array(array: np.ndarray) -> np.ndarray:
    return np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)


def is_float16_model(path: str | Path) -> bool:
    """True when the graph holds float16 weights (a file this module or AutoCast produced)."""
    from engines.export import load_onnx  # one sentence for a truncated or foreign file

    onnx = _onnx()
    model = load_onnx(path)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def convert_to_float16(model: Any) -> Any:
    """Return a float16 copy of ``model`` (an ``onnx.ModelProto``) with float32 I/O."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    if model.functions:
        raise XmkdError(
            "FP16 conversion needs an ONNX graph without local functions; export with "
            "optimize=True (the default) so they are inlined"
        )
    subgraph_types = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    for node in graph.node:
        if any(a.type in subgraph_types for a in node.attribute):
            raise XmkdError(f"FP16 conversion does not handle control flow ({node.op_type} node)")

    keep_fp32: set[str] = set()
    for node in graph.node:
        for index in FLOAT32_ONLY_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index]:
                keep_fp32.add(node.input[index])

    for i, init in enumerate(graph.initializer):
        if init.data_type == FLOAT and init.name not in keep_fp32:
            array = numpy_helper.to_array(init)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(_to_fp16_array(array), init.name))

    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep_fp32:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == FLOAT:
                    array = numpy_helper.to_array(attr.t)
                    attr.t.CopyFrom(numpy_helper.from_array(_to_fp16_array(array), attr.t.name))
                elif attr.name in ("value_float", "value_floats"):
                    values = np.asarray(
                        attr.f if attr.name == "value_float" else list(attr.floats), np.float32
                    )
                    tensor = numpy_helper.from_array(_to_fp16_array(values))
                    node.attribute.remove(attr)
                    node.attribute.append(helper.make_attribute("value", tensor))
                    break
        elif node.op_type == "ConstantOfShape":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == FLOAT:
                    array = numpy_helper.to_array(attr.t)
                    attr.t.CopyFrom(numpy_helper.from_array(_to_fp16_array(array), attr.t.name))
        elif node.op_type == "Cast" and node.output[0] not in keep_fp32:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == FLOAT:
                    attr.i = FLOAT16
        elif node.op_type in ("RandomNormal", "RandomUniform", "EyeLike") or (
            node.op_type.endswith("Like") and node.op_type.startswith("Random")
        ):
            for attr in node.attribute:
                if attr.name == "dtype" and attr.i == FLOAT:
                    attr.i = FLOAT16

    # Float32 I/O: cast graph inputs down right away and graph outputs back up at the end.
    new_nodes = []
    for inp in graph.input:
        if inp.type.tensor_type.elem_type != FLOAT:
            continue
        half = f"{inp.name}__fp16"
        for node in graph.node:
            for k, name in enumerate(node.input):
                if name == inp.name and name not in keep_fp32:
                    node.input[k] = half
        new_nodes.append(helper.make_node("Cast", [inp.name], [half], to=FLOAT16))
    tail_nodes = []
    for out in graph.output:
        if out.type.tensor_type.elem_type != FLOAT:
            continue
        half = f"{out.name}__fp16"
        for node in graph.node:
            for k, name in enumerate(node.output):
                if name == out.name:
                    node.output[k] = half
            for k, name in enumerate(node.input):
                if name == out.name:
                    node.input[k] = half
        tail_nodes.append(helper.make_node("Cast", [half], [out.name], to=FLOAT))
    nodes = new_nodes + list(graph.node) + tail_nodes
    del graph.node[:]
    graph.node.extend(nodes)
    # Intermediate type annotations are now stale; shape inference recomputes what is needed.
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def convert_file_to_float16(source: str | Path, target: str | Path) -> Path:
    """Convert the ONNX file ``source`` and save the float16 graph as ``target`` (one file)."""
    onnx = _onnx()
    model = onnx.load(str(source))
    converted = convert_to_float16(model)
    target = Path(target)
    tmp = target.with_suffix(".tmp")
    onnx.save(converted, str(tmp))
    tmp.replace(target)
    return target
