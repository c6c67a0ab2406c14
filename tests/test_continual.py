"""Continual ST-GCN (xmkd.models.stgcn_continual, engines.continual): which outputs equal the
regular model's, the strided emission cadence, resets, the ONNX step against the torch step and
the TensorRT profile of its state tensors (fake tensorrt module: no GPU here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.continual import (
    ContinualEnsemble,
    ContinualStepper,
    continual_ensemble,
    continual_input_shapes,
    export_continual,
)
from xmkd.errors import XmkdError
from xmkd.models.stgcn import STGCN
from xmkd.models.stgcn_continual import (
    ContinualSTGCN,
    regular_columns,
    supports_continual,
    unpadded_columns,
)
from xmkd.preprocess import InputSpec

TOL = 1e-4


def trained_like(width: float = 0.125, classes: int = 5, seed: int = 0) -> STGCN:
    """A small ST-GCN whose outputs depend on the input: the reference init (weights N(0, 0.02))
    gives nearly constant logits, which would make any equality check pass."""
    torch.manual_seed(seed)
    model = STGCN(num_class=classes, width=width, dropout=0.0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, 1.5 / fan_in**0.5)
                m.bias.normal_(0.0, 0.1)
            elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.normal_(0.0, 0.1)
    return model.eval()


def stream(frames: int, persons: int = 2, batch: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, frames, 25, persons, generator=g) * 0.5


def run_steps(cont: ContinualSTGCN, x: torch.Tensor):
    """Step every frame of ``x``; (frame index, logits) of every prediction and the state."""
    state = cont.start(x.shape[0])
    out = []
    with torch.no_grad():
        for t in range(x.shape[2]):
            logits, state = cont.step(x[:, :, t], state)
            if logits is not None:
                out.append((t, logits))
    return out, state


@pytest.fixture(scope="module")
def model() -> STGCN:
    torch.set_num_threads(1)
    return trained_like()


def test_emitted_columns_equal_the_regular_models_columns(model):
    x = stream(140)
    cont = ContinualSTGCN(model, window=400).eval()
    _, state = run_steps(cont, x)
    pool, weights = state.tensors[-2], state.tensors[-1]
    emitted = int(weights.sum())
    # column j is emitted by the step completing frame 4j + 79: 140 frames -> 16 columns
    assert emitted == (140 - cont.delay - 4) // 4 + 1 == 16
    with torch.no_grad():
        ref = regular_columns(model, x)
    # the regular model on the frames since the reset (left zero padding = the zero state)
    assert torch.allclose(pool[:, -emitted:], ref[:, :emitted], atol=TOL, rtol=0)
    # its later columns reach into the right zero padding: they differ from what the stream
    # gives them once the real frames arrive
    with torch.no_grad():
        longer = regular_columns(model, stream(240))[:, emitted : emitted + 1]
    assert not torch.allclose(ref[:, emitted : emitted + 1], longer, atol=1e-3)


@pytest.mark.parametrize("frames", [1, 6, 37, 64, 101])
def test_flush_equals_the_regular_model_on_the_frames_since_the_reset(model, frames):
    """The equal variant: STGCN(x[:, :, :frames]) unchanged (zero padding at both edges), for
    any number of frames up to the window, a partial step included."""
    x = stream(frames, batch=2)
    cont = ContinualSTGCN(model, window=128).eval()
    _, state = run_steps(cont, x)
    with torch.no_grad():
        exact = cont.flush(state)
        regular = model(x)
    assert exact is not None
    assert torch.allclose(exact, regular, atol=TOL, rtol=0)


def test_delayed_prediction_is_the_unpadded_model_and_differs_from_the_padded_one(model):
    """Warmed up, the fast prediction pools the last K columns, each computed from real frames
    only: the regular model with its temporal padding removed on the last 4(K-1) + 153 frames,
    i.e. the padded model's interior columns; the padded model's logits on the window also
    average its edge columns (zero padding), so they differ."""
    window = 32
    cont = ContinualSTGCN(model, window=window).eval()
    k = cont.columns
    span = 4 * (k - 1) + 153  # receptive field of one final column: 153 frames
    x = stream(span + 40)
    predictions, _ = run_steps(cont, x)
    t, logits = predictions[-1]
    newest = t - cont.delay - 3  # centre of the newest column (its step ended at frame t)
    start = newest - 4 * (k - 1) - 76  # first frame of the oldest pooled column's field
    piece = x[:, :, start : start + span]
    with torch.no_grad():
        valid = unpadded_columns(model, piece)
        assert valid.shape[1] == k
        feats = valid.mean(dim=1).view(1, 2, -1).mean(dim=1)
        unpadded = model.fcn(feats[:, :, None, None]).flatten(1)
        padded_cols = regular_columns(model, piece)
        interior = padded_cols[:, 19 : 19 + k]
        padded = model(piece)
    assert torch.allclose(logits, unpadded, atol=TOL, rtol=0)
    assert torch.allclose(valid, interior, atol=TOL, rtol=0)
    assert (logits - padded).abs().max() > 1e-2


def test_strided_blocks_emit_every_second_and_fourth_frame(model):
    cont = ContinualSTGCN(model, window=64).eval()
    # columns a step (4 frames) brings to each of the 10 blocks
    assert [rate for *_, rate, _off in cont.layout] == [4, 4, 4, 4, 4, 2, 2, 2, 1, 1]
    assert cont.chunk == 4 and cont.delay == 76
    predictions, _ = run_steps(cont, stream(120))
    frames = [t for t, _ in predictions]
    assert frames[0] == 79  # the first column needs frame 0 + 76 (+ the rest of its step)
    assert frames == list(range(79, 120, 4))


def test_reset_forgets_the_previous_stream(model):
    cont = ContinualSTGCN(model, window=64).eval()
    a, b = stream(100, seed=2), stream(100, seed=3)
    fresh, _ = run_steps(cont, b)
    _, state_a = run_steps(cont, a)
    # continuing from stream a is not a reset ...
    carried = []
    with torch.no_grad():
        for t in range(100):
            logits, state_a = cont.step(b[:, :, t], state_a)
            if logits is not None:
                carried.append(logits)
    assert not torch.allclose(carried[-1], fresh[-1][1], atol=1e-3)
    # ... start() is
    again, _ = run_steps(cont, b)
    assert all(torch.equal(p[1], q[1]) for p, q in zip(fresh, again))


def test_reference_layout_state_dict_loads():
    """A reference-size ST-GCN's state_dict (the yysijie/st-gcn keys) loads into the continual
    model unchanged: same keys, no extra weights."""
    reference = STGCN(num_class=60).eval()
    cont = ContinualSTGCN(STGCN(num_class=60), window=300).eval()
    assert list(cont.state_dict()) == list(reference.state_dict())
    cont.load_state_dict(reference.state_dict())
    assert all(
        torch.equal(a, b)
        for a, b in zip(cont.state_dict().values(), reference.state_dict().values())
    )


def test_specs_and_students_that_cannot_run_continually():
    assert supports_continual("stgcn", InputSpec(window=300, fit="pad")) is None
    assert "resize" in supports_continual("stgcn", InputSpec(window=16, fit="resize"))
    assert "first frame" in supports_continual("stgcn", InputSpec(fit="pad", center="first"))
    assert "ST-GCN" in supports_continual("hcn", InputSpec(window=32, fit="pad"))

    class Source:
        students = [STGCN(num_class=3, width=0.125)]
        spec = InputSpec(window=16, fit="resize")
        rule = "mean"
        onnx_path = None

    with pytest.raises(XmkdError, match="cannot run continually"):
        continual_ensemble(Source())


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    ensemble = ContinualEnsemble([ContinualSTGCN(model, window=32).eval()])
    path = tmp_path_factory.mktemp("continual") / "step.onnx"
    return ensemble, export_continual(ensemble, path)


def test_onnx_runtime_step_equals_the_torch_step(exported):
    ensemble, result = exported
    assert result.passed and result.path.is_file()
    assert result.probs_max_abs_diff <= TOL and result.state_max_abs_diff <= TOL
    assert result.metadata["continual"] and result.metadata["chunk"] == 4
    ort = ContinualStepper.open("onnxruntime-cpu", ensemble, onnx_path=result.path, threads=1)
    eager = ContinualStepper.open("torch-cpu", ensemble)
    x = stream(120)[0].numpy()
    s_ort, s_torch = ort.start(), eager.start()
    outputs = []
    for t in range(x.shape[1]):
        a, b = ort.push(s_ort, x[:, t]), eager.push(s_torch, x[:, t])
        assert (a is None) == (b is None)
        if a is not None:
            outputs.append((a, b))
    assert len(outputs) == 11  # frames 79, 83, ..., 119
    worst = max(float(np.abs(a - b).max()) for a, b in outputs)
    assert worst <= TOL
    # the predictions depend on the input (a constant model would pass any comparison)
    assert float(np.ptp(outputs[-1][1])) > 1e-2


def test_exact_stepper_predicts_the_regular_model_from_the_first_step(model):
    ensemble = ContinualEnsemble([ContinualSTGCN(model, window=64).eval()])
    stepper = ContinualStepper.open("torch-cpu", ensemble, exact=True)
    x = stream(24)
    state = stepper.start()
    probs = [stepper.push(state, x[0, :, t].numpy()) for t in range(24)]
    assert probs[2] is None and probs[3] is not None  # every 4th frame, from the first step
    with torch.no_grad():
        regular = model(x).softmax(-1)[0].numpy()
    assert np.abs(probs[-1] - regular).max() <= TOL
    with pytest.raises(XmkdError, match="torch engines only"):
        ContinualStepper.open("onnxruntime-cpu", ensemble, onnx_path="x.onnx", exact=True)


def test_tensorrt_profile_holds_every_state_tensor(exported, monkeypatch):
    """The builder gives each input of the step (frames and state) its own static shape."""
    from engines.tensorrt import ShapeProfile, build_serialized_engine
    from tests.test_engines_trt import TRT10, fake_tensorrt

    _, result = exported
    shapes = continual_input_shapes(result.path)
    assert len(shapes) == 1 + len(result.state_names)
    trt = fake_tensorrt(**TRT10)

    class Input:
        def __init__(self, name):
            self.name = name

    class Network:
        num_inputs = len(shapes)

        def get_input(self, i):
            return Input(list(shapes)[i])

    monkeypatch.setattr(trt.Builder, "create_network", lambda self, flags: Network())
    profile = ShapeProfile(batch=(1, 1, 1), window=(4, 4, 4))
    plan = build_serialized_engine(result.path, profile, trt=trt, input_shapes=shapes)
    assert plan.startswith(b"PLAN-")
    set_shapes = {c[1]: c[2:] for c in trt.calls if c[0] == "set_shape"}
    assert set_shapes == shapes
    assert set_shapes["state_s0_pool"][0] == (2, 8, 32)  # (N*M, K columns, channels)


# --------------------------------------------------------------------------------------------
# The continual mode of the streaming classifier (engines.streaming.ContinualTracker)

CLASSES = [f"A{i:03d}" for i in range(1, 61)]


def pad_source(num_persons: int = 1, center: str = "frame", window: int = 128, classes: int = 60):
    from engines.backends import ModelSource
    from xmkd.checkpoint import StreamInfo

    spec = InputSpec(window=window, fit="pad", center=center, num_persons=num_persons)
    return ModelSource(
        class_names=CLASSES[:classes],
        spec=spec,
        students=[trained_like(classes=classes)],
        stream=StreamInfo(clip_frames=128, fps=30.0),
    )


def replay(backend, folder, config=None):
    """Every prediction of the streaming classifier on an NTU folder played in lockstep."""
    from capture.ntu_replay import NTUReplaySource
    from engines.streaming import StreamingClassifier, StreamingConfig

    predictions = []
    classifier = StreamingClassifier(
        backend, config or StreamingConfig(), on_prediction=predictions.append
    )
    with classifier, NTUReplaySource(str(folder), realtime=False, video=False) as capture:
        classifier.set_source_fps(capture.fps)
        for frame in capture:
            classifier.push(frame, wait=True)
        classifier.flush()
    assert not classifier.errors, classifier.errors
    return predictions, classifier


@pytest.mark.parametrize("center", ["frame", "none"])
def test_continual_clip_end_predictions_equal_offline_and_the_regular_path(
    generated_ntu_samples, center
):
    """At each clip's end the continual mode gives the regular model on the clip's window
    (what xmkd eval computes), on clips with gaps, a second person, a crowd and a reacquired
    body (one person per window); the regular live path gives the same where its window is
    the clip (the first clip: later windows reach into the previous clip)."""
    from engines.backends import TorchBackend
    from engines.continual import open_continual
    from xmkd.ntu import read_skeleton

    source = pad_source(center=center)
    regular = TorchBackend("cpu").load(source)
    offline = {f.stem: regular.classify(source.prepare(read_skeleton(f))[None])[0] for f in
               generated_ntu_samples}  # fmt: skip
    folder = generated_ntu_samples[0].parent
    continual, classifier = replay(open_continual("torch-cpu", source), folder)
    assert classifier.continual
    ends = [p for p in continual if p.clip_end]
    assert len(ends) == len(generated_ntu_samples) == 5
    for p, f in zip(ends, generated_ntu_samples):
        assert np.abs(p.raw - offline[f.stem]).max() < TOL, f.stem
    # the outputs depend on the clip (more than the tolerance apart, with a random model on
    # raw coordinates): the equality is not one of constants
    assert max(np.abs(a.raw - b.raw).max() for a in ends for b in ends) > 2 * TOL
    # between clip ends: a fast prediction every 4 frames once the first column is pooled
    fast = [p for p in continual if not p.clip_end]
    assert fast and all(p.frames % 4 == 0 and p.frames > 76 for p in fast)
    regular_ends = [p for p in replay(regular, folder)[0] if p.clip_end]
    assert np.abs(regular_ends[0].raw - ends[0].raw).max() < TOL


def test_frame_column_equals_the_regular_window_column(generated_ntu_samples):
    """A frame's column, computed from that frame alone, is the regular window's column there
    (pad windows, centred per frame or not), for the body the window puts in slot 0."""
    from capture.source import sequence_to_bodies
    from engines.backends import prepare_clip
    from engines.streaming import frame_column
    from xmkd.ntu import read_skeleton, select_bodies

    for center in ("frame", "none"):
        spec = InputSpec(window=128, fit="pad", center=center, num_persons=1)
        seq = read_skeleton(generated_ntu_samples[2])  # gaps: frames without a body
        window = prepare_clip(seq, spec, "motion", 2)
        first = int(np.asarray(seq.body_ids)[select_bodies(seq, 2, "motion") == 0][0])
        for t, bodies in enumerate(sequence_to_bodies(seq)):
            chosen = [b for b in bodies if b.id == first]
            expected = window[:, t]
            if chosen:
                assert np.array_equal(frame_column(chosen[0], spec, "motion", 2), expected)
            else:
                assert not expected.any()


def _body(body_id: int, t: int):
    from capture.source import Body

    joints = np.zeros((25, 3))
    joints[:, 0] = 0.3 * body_id + 0.1 * np.sin(t / 3.0 + body_id) + np.linspace(0, 0.4, 25)
    joints[:, 1] = np.linspace(-0.8, 0.7, 25)
    joints[:, 2] = 3.0
    return Body(id=body_id, joints=joints)


def _frame(index: int, ids, clip=None, clip_end=False):
    from capture.source import Frame

    bodies = [_body(i, index) for i in ids]
    frame = Frame(index, None, None, bodies, index * 33_333, 0)
    frame.clip, frame.clip_end = clip, clip_end
    return frame


def test_one_state_per_body_reset_when_lost_replaced_or_at_a_clip_boundary():
    from engines.continual import open_continual
    from engines.streaming import ContinualTracker, StreamingConfig, plan_window

    source = pad_source(window=32)
    stepper = open_continual("torch-cpu", source)
    plan = plan_window(StreamingConfig(history=8), source.stream_info, source.spec)
    tracker = ContinualTracker(stepper, source.spec, plan)
    index = 0

    def feed(ids, **kw):
        nonlocal index
        out = tracker.feed(_frame(index, ids, **kw))
        index += 1
        return out

    for _ in range(5):
        feed([1])
    for _ in range(3):
        feed([1, 2])
    assert {b: s.state.frames for b, s in tracker.bodies.items()} == {1: 8, 2: 3}
    body_1 = tracker.bodies[1]
    for _ in range(8):  # body 2 lost: its last frame leaves the ring of 8 frames
        feed([1])
    assert set(tracker.bodies) == {1} and tracker.bodies[1] is body_1
    feed([3])  # a new id (body 1 replaced): a fresh state of its own
    assert tracker.bodies[3].state.frames == 1 and tracker.bodies[1].state.frames == 17
    # a clip boundary resets every state; a body appearing later in the clip starts with
    # zero frames for the clip's earlier frames (the regular window holds zeros there)
    feed([1], clip=7)
    assert set(tracker.bodies) == {1} and tracker.bodies[1].state.frames == 1
    feed([1], clip=7)
    feed([1, 4], clip=7)
    assert tracker.bodies[4].state.frames == 3
    probs, exact, body, frames = feed([1, 4], clip=7, clip_end=True)
    assert exact and frames == 4 and body in (1, 4) and probs.shape == (60,)


def test_auto_chooses_continual_when_the_model_can_run_it(monkeypatch):
    from engines import backends
    from engines.backends import ModelSource, choose_continual
    from xmkd.config import synthetic_input_spec

    cpu_only = {name: None if name.endswith("-cpu") else "no GPU" for name in backends.AUTO_ORDER}
    monkeypatch.setattr(backends, "availability", lambda: dict(cpu_only))
    source = pad_source()
    use, why = choose_continual(None, "auto", source)
    assert use and why.startswith("auto: continual inference")
    assert choose_continual(None, "torch-cpu", source) == (False, "")
    assert choose_continual(False, "auto", source) == (False, "")
    assert choose_continual(True, "torch-cpu", source)[0]
    resized = ModelSource(
        class_names=CLASSES,
        spec=InputSpec.from_dict(synthetic_input_spec("stgcn")),
        students=source.students,
    )
    use, why = choose_continual(None, "auto", resized)
    assert not use and why.startswith("auto: the regular window path, not continual: ")
    assert "'resize'" in why
    with pytest.raises(XmkdError, match=r"^--continual: this model cannot run continually"):
        choose_continual(True, "auto", resized)


def test_auto_keeps_the_regular_path_on_a_gpu(monkeypatch):
    """On a GPU a continual step costs about what a whole window does (H200: 4.7 vs 3.0 ms),
    so auto keeps the regular path there; --continual still runs it."""
    from engines import backends
    from engines.backends import choose_continual

    source = pad_source()
    for gpu in ("torch-cuda", "tensorrt"):
        up = {name: None if name in (gpu, "torch-cpu", "onnxruntime-cpu") else "no" for name in
              backends.AUTO_ORDER}  # fmt: skip
        monkeypatch.setattr(backends, "availability", lambda up=up: dict(up))
        use, why = choose_continual(None, "auto", source)
        assert not use and why.startswith("auto: the regular window path on the GPU")
        assert choose_continual(True, "auto", source)[0]


def test_live_continual_json_runs_end_to_end(generated_ntu_samples, tmp_path, monkeypatch, capsys):
    import json

    from xmkd.checkpoint import StreamInfo, make_checkpoint, save_checkpoint
    from xmkd.cli import main

    monkeypatch.setenv("XMKD_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "pad.pt"
    spec = InputSpec(window=128, fit="pad", center="frame", num_persons=1)
    save_checkpoint(
        path,
        make_checkpoint(
            "students",
            [("stgcn", {"width": 0.125}, trained_like(classes=60))],
            CLASSES,
            spec.to_dict(),
            stream=StreamInfo(clip_frames=90, fps=30.0),
        ),
    )
    folder = generated_ntu_samples[0].parent
    source = f"ntu:{folder}?realtime=0&video=0"
    args = ["live", "--checkpoint", str(path), "--source", source, "--json"]
    assert main([*args, "--engine", "torch-cpu", "--continual"]) == 0
    out, err = capsys.readouterr()
    *predictions, last = [json.loads(line) for line in out.splitlines()]
    summary = last["summary"]
    assert summary["continual"] is True and summary["engine"] == "torch-cpu"
    assert summary["clips"] == 5 and summary["predictions"] == len(predictions) > 5
    assert "continual on torch-cpu: one state per tracked body" in err
    # --no-continual: the regular path on the same clips, and auto's line when it chooses
    assert main([*args, "--engine", "torch-cpu", "--no-continual"]) == 0
    assert json.loads(capsys.readouterr()[0].splitlines()[-1])["summary"]["continual"] is False
