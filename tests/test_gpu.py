"""On a CUDA GPU: students and the teacher train there, their checkpoints move to a machine
without a GPU (inference and resume) and back, and the live path classifies on the GPU as it
does on the CPU. Every test here needs CUDA and skips, saying so, without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from capture.source import Frame
from engines.backends import ModelSource, TorchBackend
from engines.streaming import StreamingClassifier, StreamingConfig
from tests.test_distill import CLASSES, Blobs, tiny_config
from tests.test_engines_streaming import body
from xmkd.checkpoint import load_checkpoint, load_students, load_teacher
from xmkd.config import TeacherConfig
from xmkd.train.distill import train_students
from xmkd.train.teacher import build_teacher, train_teacher

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

#: Probabilities on GPU and CPU differ by float rounding (and TF32 where torch enables it for
#: convolutions); far below what would change a prediction.
PROB_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def data():
    train = Blobs(48, seed=0)
    teacher = torch.nn.functional.one_hot(train.y, len(CLASSES)).float() * 4.0
    return train, Blobs(24, seed=1), teacher


def common(teacher) -> dict:
    return dict(class_names=CLASSES, input_spec={"window": 16}, teacher_logits=teacher)


def test_students_train_on_cuda_and_run_on_cpu(tmp_path, data):
    train, val, teacher = data
    result = train_students(
        tiny_config(epochs=3, device="cuda"),
        train,
        run_dir=tmp_path,
        val_set=val,
        **common(teacher),
    )
    first, last = result.history[0], result.history[-1]
    assert last["losses"]["student0"]["sup"] < first["losses"]["student0"]["sup"]
    assert result.best_accuracy is not None
    # Every tensor in the checkpoint is a CPU tensor: it loads where there is no GPU.
    payload = load_checkpoint(result.last, map_location=None)
    for model in payload["models"]:
        assert all(t.device.type == "cpu" for t in model["state_dict"].values())
    students, _ = load_students(result.best)
    x = torch.stack([val[i][0] for i in range(8)])
    for student in students:
        on_cpu = student(x).softmax(1)
        on_gpu = student.to("cuda")(x.to("cuda")).softmax(1).cpu()
        assert (on_gpu - on_cpu).abs().max() < PROB_TOLERANCE


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_run_resumes_on_the_other_device(tmp_path, data, first, then):
    """Training begun on a GPU server continues on a laptop, and the other way round:
    weights, optimizer moments and the schedule come along."""
    train, val, teacher = data
    cut = train_students(
        tiny_config(epochs=1, device=first), train, run_dir=tmp_path, val_set=val, **common(teacher)
    )
    steps_per_epoch = load_checkpoint(cut.last)["train"]["step"]
    resumed = train_students(
        tiny_config(epochs=2, device=then),
        train,
        run_dir=tmp_path,
        val_set=val,
        resume=True,
        **common(teacher),
    )
    state = load_checkpoint(resumed.last, map_location=None)["train"]
    assert state["epoch"] == 2 and len(resumed.history) == 2
    assert resumed.history[0] == cut.history[0]  # the first epoch is kept, not redone
    # the step count and the lr schedules went on from epoch 1
    assert state["step"] == 2 * steps_per_epoch
    assert [s["last_epoch"] for s in state["schedulers"]] == [2, 2]
    for optimizer in state["optimizers"]:  # saved moments are CPU tensors, whatever trained
        for moments in optimizer["state"].values():
            assert all(v.device.type == "cpu" for v in moments.values() if torch.is_tensor(v))


def test_students_train_in_bf16_and_keep_float32_weights(tmp_path, data):
    train, val, teacher = data
    config = tiny_config(epochs=3, device="cuda", precision="bf16")
    result = train_students(config, train, run_dir=tmp_path, val_set=val, **common(teacher))
    first, last = result.history[0], result.history[-1]
    assert last["losses"]["student0"]["sup"] < first["losses"]["student0"]["sup"]
    assert last["losses"]["student0"]["mutual"] > 0
    payload = load_checkpoint(result.best)
    for model in payload["models"]:
        floats = [t for t in model["state_dict"].values() if t.is_floating_point()]
        assert floats and all(t.dtype == torch.float32 for t in floats)


class Frames(Dataset):
    """Tiny RGB clips whose class sets the brightness of one colour channel."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, len(CLASSES), (n,), generator=g)
        self.x = torch.rand(n, 3, 3, 32, 32, generator=g) * 0.2  # (segments, C, H, W)
        for i, label in enumerate(self.y.tolist()):
            self.x[i, :, label % 3] += 0.25 * (1 + label // 3)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i]), i


def test_teacher_trains_on_cuda_in_bf16_and_loads_on_cpu(tmp_path):
    config = TeacherConfig(
        modality="rgb", epochs=2, batch_size=8, crop_size=32, device="cuda", precision="bf16"
    )
    model = build_teacher(config, len(CLASSES))
    spec = config.input_spec(model)
    result = train_teacher(
        config, Frames(32, 0), CLASSES, spec, tmp_path, eval_set=Frames(16, 1), model=model
    )
    assert len(result.history) == 2
    loaded, meta = load_teacher(result.path)
    assert meta.class_names == CLASSES and meta.modality == "rgb"
    assert next(loaded.parameters()).device.type == "cpu"
    x = Frames(4, 2).x
    on_gpu = model.eval()(x.to("cuda")).softmax(1).cpu()
    assert (loaded(x).softmax(1) - on_gpu).abs().max() < PROB_TOLERANCE


def test_streaming_classifier_on_the_gpu_matches_the_cpu():
    """The live path (frames -> windows -> model -> smoothed top-k) on torch-cuda gives the
    predictions torch-cpu gives for the same stream."""
    from xmkd.models import build_student
    from xmkd.preprocess import default_input_spec

    spec = default_input_spec("stgcn", window=32, fit="resize")
    torch.manual_seed(5)
    model = build_student("stgcn", len(CLASSES), width=0.25).eval()
    source = ModelSource(class_names=CLASSES, spec=spec, students=[model])
    runs = {}
    for device in ("cpu", "cuda"):
        predictions = []
        config = StreamingConfig(every=8, min_frames=16, smoothing="none", top_k=3)
        classifier = StreamingClassifier(
            TorchBackend(device).load(source), config, on_prediction=predictions.append
        )
        with classifier:
            for t in range(96):
                bodies = [body(3, t, speed=0.3), body(9, t, speed=0.05, offset=1.0)]
                classifier.push(Frame(t, None, None, bodies, t * 33_333, t * 33_333_000))
                assert classifier.flush(timeout=30)  # one request at a time: none dropped
        runs[device] = predictions
    assert len(runs["cpu"]) == len(runs["cuda"]) > 5
    for a, b in zip(runs["cpu"], runs["cuda"]):
        assert a.frame_index == b.frame_index and a.labels == b.labels
        assert np.abs(np.asarray(a.probs) - np.asarray(b.probs)).max() < PROB_TOLERANCE
