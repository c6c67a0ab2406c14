"""Streaming classifier: same predictions as offline evaluation on real clips, ring buffers, body
choice, every-k scheduling without blocking capture, and temporal smoothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from capture.source import Body, Frame, open_source
from engines.backends import ModelSource, TorchBackend
from engines.streaming import BodyBuffers, Smoother, StreamingClassifier, StreamingConfig
from xmkd.errors import XmkdError
from xmkd.models import build_student
from xmkd.ntu import read_skeleton, to_model_array
from xmkd.preprocess import default_input_spec, prepare_window

torch.set_num_threads(1)
CLASSES = [f"A{i:03d}" for i in range(1, 9)]


def backend_for(arch: str, spec) -> TorchBackend:
    torch.manual_seed(3)
    kwargs = {"width": 0.125} | ({"window_size": spec.window} if arch == "hcn" else {})
    model = build_student(arch, len(CLASSES), **kwargs)
    for m in model.modules():  # far from uniform outputs, so mismatches would show
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
    source = ModelSource(class_names=CLASSES, spec=spec, students=[model.eval()])
    return TorchBackend("cpu").load(source)


class SlowBackend:
    """A stand-in backend taking ``delay`` seconds per call (the worker must absorb it)."""

    def __init__(self, spec, delay: float = 0.05):
        self.source = ModelSource(class_names=CLASSES, spec=spec)
        self.delay = delay
        self.calls = 0
        self.threads: set[str] = set()

    def classify(self, windows: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        probs = np.full((len(windows), len(CLASSES)), 0.01, np.float32)
        probs[:, self.calls % len(CLASSES)] = 1.0 - 0.01 * (len(CLASSES) - 1)
        return probs


def body(body_id: int, t: int, speed: float = 0.0, offset: float = 0.0) -> Body:
    joints = np.zeros((25, 3))
    joints[:, 0] = offset + speed * np.sin(t / 3.0) + np.linspace(0, 0.5, 25)
    joints[:, 1] = np.linspace(-0.8, 0.7, 25)
    joints[:, 2] = 3.0
    return Body(body_id, joints)


def frame(index: int, bodies: list[Body]) -> Frame:
    return Frame(index, None, None, bodies, index * 33_333, time.monotonic_ns())


@pytest.mark.parametrize(
    "arch,spec",
    [
        ("stgcn", default_input_spec("stgcn")),  # reference: 300-frame zero-padded windows
        ("hcn", default_input_spec("hcn")),  # centre crop 0.95, resized to 32, centred
    ],
    ids=["stgcn-pad300", "hcn-crop32"],
)
def test_streaming_equals_offline_on_ntu_clips(any_ntu_samples, arch, spec):
    backend = backend_for(arch, spec)
    for path in any_ntu_samples:
        seq = read_skeleton(path)
        clip, valid = to_model_array(seq, max_bodies=spec.num_persons)
        offline = backend.classify(prepare_window(clip, valid, spec)[None])[0]
        config = StreamingConfig(every=1, history=400, smoothing="none", top_k=3)
        classifier = StreamingClassifier(backend, config)
        source = open_source(f"ntu:{path}", realtime=False, video=False)
        with classifier, source:
            for f in source:
                classifier.push(f)
            assert classifier.flush(timeout=60)
        # The worker always takes the newest request: its last prediction is the whole clip.
        last = list(classifier.predictions.queue)[-1]
        assert last.frame_index == seq.num_frames - 1 and last.frames == seq.num_frames
        assert np.abs(last.raw - offline).max() < 1e-6, path.name
        assert last.labels[0] == CLASSES[int(np.argmax(offline))]
        assert not classifier.errors
    assert offline.max() - offline.min() > 0.05  # discriminative outputs, not uniform


def test_every_k_on_a_worker_thread_never_blocks_capture():
    spec = default_input_spec("stgcn", window=32, fit="resize")
    backend = SlowBackend(spec, delay=0.05)
    received = []
    config = StreamingConfig(every=5, min_frames=10, smoothing="none", top_k=2)
    classifier = StreamingClassifier(backend, config, on_prediction=received.append)
    push_times = []
    with classifier:
        for i in range(120):
            start = time.perf_counter()
            triggered = classifier.push(frame(i, [body(7, i, speed=0.2)]))
            push_times.append(time.perf_counter() - start)
            assert triggered == ((i + 1) % 5 == 0 and i + 1 >= 10)
        assert classifier.flush(timeout=10)
    assert classifier.requests == 120 // 5 - 1  # frames 10, 15, ..., 120
    # Capture pushed 24 requests in far less time than 24 x 50 ms of inference: stale requests
    # were dropped, every request was either run or dropped, nothing queued up.
    assert sum(push_times) < 0.5 * classifier.requests * backend.delay
    assert classifier.dropped_requests > 0
    assert classifier.emitted + classifier.dropped_requests == classifier.requests
    assert backend.calls == classifier.emitted == len(received)
    assert backend.threads == {"xmkd-streaming-classifier"}
    assert received[-1].frame_index == 119  # the newest window is never the one dropped
    assert len(received[-1].labels) == 2 and received[-1].labels[0] in CLASSES


def test_ring_buffers_per_body():
    buffers = BodyBuffers(history=10)
    for i in range(25):
        bodies = [body(1, i)] + ([body(2, i, offset=1.0)] if i < 5 else [])
        buffers.push(frame(i, bodies), 0)
        if i == 4:
            assert set(buffers.bodies) == {1, 2}
    assert len(buffers) == 10 and set(buffers.bodies) == {1}  # body 2 aged out
    assert [idx for idx, _ in buffers.bodies[1]] == list(range(15, 25))
    per_frame, newest, ids = buffers.snapshot()
    assert len(per_frame) == 10 and newest[0] == 24 and ids == (1,)
    assert all(len(bodies) == 1 and bodies[0].id == 1 for bodies in per_frame)
    # frames without bodies are kept (as NTU clips have them)
    buffers.push(frame(25, []), 0)
    assert len(buffers.snapshot()[0][-1]) == 0
    # a source whose frame index restarts (next file of a playlist) keeps a consistent ring
    for i in range(3):
        buffers.push(frame(i, [body(1, i)]), 0)
    per_frame, newest, _ = buffers.snapshot()
    assert len(per_frame) == 10 and newest[0] == 2 and len(buffers.bodies[1]) == 9


def test_window_keeps_the_two_moving_bodies():
    """Three tracked bodies, one standing still (e.g. a false detection): the window holds the
    two that move, by the motion rule of xmkd.ntu.to_model_array."""
    spec = default_input_spec("stgcn", window=40, fit="pad", center="none")
    classifier = StreamingClassifier(SlowBackend(spec, 0), StreamingConfig(history=40))
    frames = [[body(1, t, 0.0, 2.0), body(2, t, 0.3), body(3, t, 0.2, -1.0)] for t in range(30)]
    window = classifier.window(frames)
    assert window.shape == (3, 40, 25, 2)
    x_first_joint = window[0, :30, 0, :]
    assert np.allclose(x_first_joint[:, 0], [body(2, t, 0.3).joints[0, 0] for t in range(30)])
    assert np.allclose(x_first_joint[:, 1], [body(3, t, 0.2, -1.0).joints[0, 0] for t in range(30)])
    assert not np.any(window[:, 30:])  # padded after the 30 frames


def test_min_frames_and_no_bodies():
    spec = default_input_spec("stgcn", window=32, fit="resize")
    classifier = StreamingClassifier(SlowBackend(spec, 0), StreamingConfig(every=1, min_frames=4))
    assert not classifier.push(frame(0, [body(1, 0)]))
    assert [classifier.push(frame(i, [body(1, i)])) for i in range(1, 4)] == [False, False, True]
    classifier.reset()
    for i in range(10):
        assert not classifier.push(frame(i, []))  # nobody in view: nothing to classify
    assert classifier.classify_now() is None


def test_smoothing():
    ema = Smoother("ema", alpha=0.25)
    assert np.allclose(ema(np.array([1.0, 0.0])), [1.0, 0.0])
    assert np.allclose(ema(np.array([0.0, 1.0])), [0.75, 0.25])
    mean = Smoother("mean", count=2)
    mean(np.array([1.0, 0.0]))
    mean(np.array([0.0, 1.0]))
    assert np.allclose(mean(np.array([0.0, 1.0])), [0.0, 1.0])  # only the last two
    assert np.allclose(Smoother("none")(np.array([0.3, 0.7])), [0.3, 0.7])
    with pytest.raises(XmkdError, match="smoothing"):
        StreamingConfig(smoothing="median")
    with pytest.raises(XmkdError, match="--every"):
        StreamingConfig(every=0)


def test_smoothed_predictions_follow_the_stream():
    spec = default_input_spec("stgcn", window=32, fit="resize")
    backend = SlowBackend(spec, 0)
    config = StreamingConfig(every=1, min_frames=1, smoothing="ema", ema_alpha=0.5, top_k=3)
    classifier = StreamingClassifier(backend, config)
    first = classifier.push(frame(0, [body(1, 0)])) and classifier.classify_now()
    second = classifier.classify_now()
    assert first and second
    # SlowBackend puts its mass on class (calls % C): calls 1 then 2 -> EMA splits it evenly.
    assert second.labels[:2] == (CLASSES[1], CLASSES[2]) or second.labels[:2] == (
        CLASSES[2],
        CLASSES[1],
    )
    assert second.probs[0] == pytest.approx(second.probs[1])
    assert np.isclose(second.scores.sum(), 1.0, atol=1e-5)
    assert list(second.probs) == sorted(second.probs, reverse=True)


def test_a_failing_model_does_not_stop_the_stream():
    spec = default_input_spec("stgcn", window=32, fit="resize")
    backend = SlowBackend(spec, 0)
    calls = []

    def broken(windows):
        calls.append(len(windows))
        raise RuntimeError("CUDA error: an illegal memory access")

    backend.classify = broken
    classifier = StreamingClassifier(backend, StreamingConfig(every=2, min_frames=2))
    with classifier:
        for i in range(6):
            classifier.push(frame(i, [body(1, i)]))
            assert classifier.flush(timeout=5)
    assert len(calls) == 3 and classifier.emitted == 0
    assert classifier.errors[0] == "RuntimeError: CUDA error: an illegal memory access"
