"""The student trainer: training works, resume reproduces an uninterrupted run, progress events."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import Dataset

from xmkd.checkpoint import load_checkpoint, load_students
from xmkd.config import DistillConfig
from xmkd.errors import XmkdError
from xmkd.train.distill import train_students
from xmkd.train.progress import read_events

CLASSES = ["a", "b", "c", "d"]


class Blobs(Dataset):
    """Random skeleton-shaped tensors whose class shifts the mean: learnable in a few steps."""

    def __init__(self, n: int, seed: int, frames: int = 16):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, len(CLASSES), (n,), generator=g)
        self.x = torch.randn(n, 3, frames, 25, 2, generator=g)
        self.x[:, 0] += self.y.view(-1, 1, 1, 1).float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i]), i


def tiny_config(**overrides) -> DistillConfig:
    base = dict(
        students=["stgcn", "hcn"],
        student_kwargs=[{"width": 0.125}, {"width": 0.125, "window_size": 16}],
        epochs=2,
        batch_size=16,
        log_every=2,
    )
    base.update(overrides)
    return DistillConfig(**base)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    train = Blobs(48, seed=0)
    teacher = torch.nn.functional.one_hot(train.y, len(CLASSES)).float() * 4.0
    return train, Blobs(24, seed=1), teacher


@pytest.fixture
def restores_determinism():
    """Put torch's global determinism settings back after a test that changes them."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


def test_resume_reproduces_uninterrupted_run(tmp_path, data, restores_determinism):
    train, val, teacher = data
    common = dict(class_names=CLASSES, input_spec={"window": 16}, teacher_logits=teacher)
    # deterministic: bit-identical on a GPU too (device "auto" trains there when there is one)
    config = tiny_config(deterministic=True)
    full = train_students(config, train, run_dir=tmp_path / "full", val_set=val, **common)
    cut = tiny_config(epochs=1, deterministic=True)
    train_students(cut, train, run_dir=tmp_path / "cut", val_set=val, **common)
    resumed = train_students(
        config, train, run_dir=tmp_path / "cut", val_set=val, resume=True, **common
    )
    assert torch.are_deterministic_algorithms_enabled()
    a = load_checkpoint(full.last)
    b = load_checkpoint(resumed.last)
    assert a["train"]["epoch"] == b["train"]["epoch"] == 2
    for ma, mb in zip(a["models"], b["models"]):
        for key, value in ma["state_dict"].items():
            assert torch.equal(value, mb["state_dict"][key]), key
    # optimizer moments and the lr schedule continue too
    for oa, ob in zip(a["train"]["optimizers"], b["train"]["optimizers"]):
        for pid, state in oa["state"].items():
            for name, value in state.items():
                if torch.is_tensor(value):
                    assert torch.equal(value, ob["state"][pid][name])
    assert a["train"]["history"][-1]["val"] == b["train"]["history"][-1]["val"]
    events = read_events(tmp_path / "cut" / "progress.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert starts[1]["resumed_from"].endswith("last.pt") and starts[1]["start_epoch"] == 1


def test_training_learns_and_checkpoints_load(tmp_path, data):
    train, val, teacher = data
    cfg = tiny_config(epochs=3, students=["stgcn", "stgcn"], student_kwargs=[{"width": 0.125}])
    result = train_students(
        cfg, train, CLASSES, {"window": 16}, tmp_path / "run", teacher_logits=teacher, val_set=val
    )
    history = result.history
    assert len(history) == 3
    first, last = history[0]["losses"]["student0"], history[-1]["losses"]["student0"]
    assert last["sup"] < first["sup"]  # it learns the teacher's labels
    assert last["mutual"] > 0  # the peer term is active
    assert result.best_accuracy is not None and result.best_accuracy > 0.25
    models, meta = load_students(result.best)
    assert len(models) == 2 and meta.archs == ["stgcn", "stgcn"] and meta.ensemble == "mean"
    assert "train" not in load_checkpoint(result.best)  # best.pt is for inference only
    events = read_events(tmp_path / "run" / "progress.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3
    step = next(e for e in events if e["event"] == "step")
    assert {"epoch", "step", "losses", "teacher_agreement", "samples_per_s", "eta_s"} <= set(step)
    epoch = next(e for e in events if e["event"] == "epoch")
    assert set(epoch["val"]) == {"student0", "student1", "ensemble_mean", "ensemble_max"}
    json.dumps(events)


def test_full_supervision_with_noise_and_missing_inputs(tmp_path, data):
    train, _, teacher = data
    cfg = tiny_config(epochs=1, supervision="full", noise=0.25, mutual=False)
    result = train_students(
        cfg, train, CLASSES, {"window": 16}, tmp_path / "noisy", labels=train.y.numpy()
    )
    assert load_checkpoint(result.last)["extra"]["noisy_labels"] == 12  # 25% of 48
    with pytest.raises(XmkdError, match="xmkd label"):
        train_students(tiny_config(), train, CLASSES, {}, tmp_path / "x")
    with pytest.raises(XmkdError, match="shape"):
        train_students(
            tiny_config(), train, CLASSES, {}, tmp_path / "x", teacher_logits=teacher[:5]
        )
    with pytest.raises(XmkdError, match="nothing to resume"):
        train_students(
            tiny_config(),
            train,
            CLASSES,
            {},
            tmp_path / "none",
            teacher_logits=teacher,
            resume=True,
        )


def test_bf16_is_refused_where_it_cannot_run(tmp_path, data, monkeypatch):
    """--precision bf16 on the CPU, or on a GPU without bfloat16, is one sentence before any
    work starts, not a slow or failing run."""
    from xmkd.train.distill import autocast_dtype

    train, val, teacher = data
    config = tiny_config(precision="bf16", device="cpu")
    with pytest.raises(XmkdError, match="bf16 is for CUDA GPUs, and this run trains on cpu"):
        train_students(config, train, CLASSES, {"window": 16}, tmp_path, teacher_logits=teacher)
    assert not (tmp_path / "last.pt").exists()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(XmkdError, match="no bfloat16"):
        autocast_dtype("bf16", "cuda:0")
    assert autocast_dtype("fp32", "cpu") is None
    with pytest.raises(ValueError, match="precision must be one of"):
        tiny_config(precision="fp16")


def test_evaluation_outputs(tmp_path):
    import numpy as np

    from xmkd.evaluate import ensemble_probs, save_report, score_students

    # two students on 6 samples of 3 classes, logits chosen so the numbers are known
    labels = np.array([0, 0, 1, 1, 2, 2])
    a = np.array([[5, 0, 0], [5, 0, 0], [0, 5, 0], [5, 0, 0], [0, 0, 5], [0, 5, 0]], float)
    b = np.array([[5, 0, 0], [0, 5, 0], [0, 5, 0], [0, 5, 0], [0, 0, 5], [0, 0, 5]], float)
    report = score_students([a, b], labels, ["x", "y", "z"], top_k=2)
    s0, s1 = report.students
    assert s0.top1 == pytest.approx(4 / 6) and s1.top1 == pytest.approx(5 / 6)
    assert s0.per_class == [1.0, 0.5, 0.5]
    assert s0.confusion.tolist() == [[2, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert s0.confusion.sum() == 6 and (s0.confusion.sum(axis=1) == [2, 2, 2]).all()
    # mean of the probabilities: where the two disagree with equal confidence, ties go to the
    # lower class index (argmax), so sample 1 -> 0 (right), 3 -> 0 (wrong), 5 -> 1 (wrong)
    assert report.ensembles["mean"].top1 == pytest.approx(4 / 6)
    assert report.ensembles["max"].count == 6
    p = np.array([[[0.6, 0.4]], [[0.1, 0.9]]])
    assert np.allclose(ensemble_probs(p, "mean"), [[0.35, 0.65]])
    assert np.allclose(ensemble_probs(p, "max"), [[0.6, 0.9]])
    # samples without a label (-1) are left out
    part = score_students([a], np.array([0, 0, 1, 1, 2, -1]), ["x", "y", "z"])
    assert part.students[0].count == 5
    out = save_report(report, tmp_path / "eval")
    for name in ("student0", "student1", "ensemble_mean", "ensemble_max"):
        png = tmp_path / "eval" / f"confusion_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = (tmp_path / "eval" / f"confusion_{name}.csv").read_text().splitlines()
        assert rows[0].split(",")[1:] == ["x", "y", "z"]
        assert sum(int(v) for r in rows[1:] for v in r.split(",")[1:]) == 6
    data = json.loads(out.read_text())
    assert data["students"][1]["top1"] == pytest.approx(5 / 6)
    assert data["ensembles"]["mean"]["confusion"] == report.ensembles["mean"].confusion.tolist()


def test_cli_teacher_label_distill_eval_end_to_end(tmp_path, tiny_session, capsys):
    from xmkd.checkpoint import load_teacher
    from xmkd.cli import main
    from xmkd.train.label import load_labels

    torch.set_num_threads(1)
    s = str(tiny_session)
    teacher_dir, labels = tmp_path / "teacher", tmp_path / "labels.pt"
    assert (
        main(
            [
                "teacher",
                "train",
                "--sessions",
                s,
                "--preset",
                "synthetic",
                "--out",
                str(teacher_dir),
                "--epochs",
                "1",
                "--width",
                "0.125",
                "--quiet",
            ]
        )
        == 0
    )
    teacher, meta = load_teacher(teacher_dir / "teacher.pt")
    assert meta.modality == "rgbdiff" and len(meta.class_names) == 6
    assert "student_train_accuracy" in meta.extra
    assert (
        main(
            [
                "label",
                "--teacher",
                str(teacher_dir / "teacher.pt"),
                "--sessions",
                s,
                "--out",
                str(labels),
                "--quiet",
            ]
        )
        == 0
    )
    cache = load_labels(labels)
    assert len(cache) == 24 and cache.logits.shape == (24, 6)  # Student-Train of the tiny preset
    assert all("P" in n for n in cache.names) and cache.accuracy() is not None
    # labeling again is a no-op (resumable)
    assert (
        main(
            [
                "label",
                "--teacher",
                str(teacher_dir / "teacher.pt"),
                "--sessions",
                s,
                "--out",
                str(labels),
                "--quiet",
            ]
        )
        == 0
    )
    assert "0 labeled now, 24 already there" in capsys.readouterr().out

    run = tmp_path / "students"
    assert (
        main(
            [
                "distill",
                "--sessions",
                s,
                "--labels",
                str(labels),
                "--out",
                str(run),
                "--preset",
                "synthetic",
                "--students",
                "stgcn,hcn",
                "--width",
                "0.125",
                "--epochs",
                "1",
                "--quiet",
                "--progress-json",
                "-",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "end"
    models, meta = load_students(run / "best.pt")
    assert meta.archs == ["stgcn", "hcn"] and meta.class_names == cache.class_names
    assert meta.spec().window == 16 and meta.kwargs[1]["window_size"] == 16  # one shared window

    assert (
        main(
            [
                "eval",
                str(run / "best.pt"),
                "--sessions",
                s,
                "--quiet",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and len(metrics["students"]) == 2
    assert sum(map(sum, metrics["ensembles"]["mean"]["confusion"])) == 24
    assert (tmp_path / "eval" / "confusion_ensemble_mean.png").stat().st_size > 1000

    # errors are one sentence naming the problem, not tracebacks
    assert main(["distill", "--sessions", s, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "xmkd label" in capsys.readouterr().err
    assert (
        main(
            [
                "distill",
                "--sessions",
                s,
                "--labels",
                str(labels),
                "--out",
                str(tmp_path / "y"),
                "--split",
                "teacher_train",
                "--quiet",
            ]
        )
        == 2
    )
    assert "no teacher label" in capsys.readouterr().err


def test_demo_runs_the_whole_pipeline(tmp_path, tiny_session, capsys):
    from xmkd.cli import main

    torch.set_num_threads(1)
    out = tmp_path / "demo"
    args = [
        "demo",
        "--sessions",
        str(tiny_session),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--teacher-epochs",
        "1",
        "--quiet",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "accuracy on Student-Train" in text and "ensemble_mean" in text
    models, meta = load_students(out / "students" / "last.pt")
    assert len(models) == 2 and meta.archs == ["stgcn", "stgcn"]
    assert (out / "students" / "eval_test" / "metrics.json").is_file()
    assert (out / "labels.pt").is_file() and (out / "teacher" / "teacher.pt").is_file()


def test_distill_and_eval_on_packed_ntu(tmp_path, generated_ntu_samples, capsys):
    from xmkd.cli import main
    from xmkd.ntu.pack import pack_ntu

    torch.set_num_threads(1)
    packed = tmp_path / "packed"
    pack_ntu(generated_ntu_samples[0].parent, packed, workers=1, progress=False)
    run = tmp_path / "run"
    # the 5 samples (the real ones' names) have no Student-Train subject: train on
    # Teacher-Train's 3 (full labels)
    assert (
        main(
            [
                "distill",
                "--packed",
                str(packed),
                "--split",
                "teacher_train",
                "--supervision",
                "full",
                "--arch",
                "stgcn",
                "--k",
                "1",
                "--width",
                "0.125",
                "--window",
                "16",
                "--fit",
                "resize",
                "--epochs",
                "1",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    models, meta = load_students(run / "best.pt")
    assert meta.num_classes == 60 and meta.class_names[0] == "A001"  # from the manifest
    assert main(["eval", str(run / "best.pt"), "--packed", str(packed), "--quiet"]) == 0
    metrics = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert metrics["students"][0]["count"] == 2  # the two x-sub test samples
    assert (
        main(
            [
                "distill",
                "--packed",
                str(packed),
                "--out",
                str(tmp_path / "x"),
                "--supervision",
                "full",
                "--quiet",
            ]
        )
        == 2
    )
    assert "no clips of the student_train split" in capsys.readouterr().err


class BlobsNaNFrom(Blobs):
    """Blobs whose first sample turns NaN from epoch ``bad_epoch`` (0-based) on."""

    def __init__(self, *args, bad_epoch: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_epoch, self.epoch = bad_epoch, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i):
        x, y, i = super().__getitem__(i)
        if i == 0 and self.epoch >= self.bad_epoch:
            x = torch.full_like(x, float("nan"))
        return x, y, i


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, data):
    _, _, teacher = data
    train = BlobsNaNFrom(48, seed=0, bad_epoch=1)
    cfg = tiny_config(epochs=3, students=["stgcn"], student_kwargs=[{"width": 0.125}])
    with pytest.raises(XmkdError) as info:
        train_students(
            cfg, train, CLASSES, {"window": 16}, tmp_path / "run", teacher_logits=teacher
        )
    message = str(info.value)
    assert message.startswith(
        "training stopped in epoch 2: the supervised loss of student 0 (stgcn)"
    )
    assert "is nan (first at step " in message and "last.pt still holds" in message
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["train"]["epoch"] == 1  # epoch 1's checkpoint, intact and loadable
    (model,), _ = load_students(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_own_recordings_distill_without_a_test_split_to_validate_on(tmp_path, capsys):
    """Unlabeled A000 recordings have no Test clips: the default validation is skipped with a
    note (the Distill tab and a new lab's first distill failed on it), an explicit
    --val-split test is one sentence saying what to do."""
    from xmkd.cli import main
    from xmkd.recordings import Session
    from xmkd.train.label import TeacherLabels

    rec = tmp_path / "rec"
    assert main(["record", "--source", "synthetic?realtime=0", "--setup", "1", "--performer",
                 "1", "--out", str(rec), "--session", "lab", "--continuous", "--clip-seconds",
                 "2", "--stride", "2", "--seconds", "12", "--no-flow"]) == 0  # fmt: skip
    names = [c.name for c in Session.open(rec / "lab").clips]
    assert names and all(n.endswith("A000") for n in names)
    labels = tmp_path / "labels.pt"
    torch.manual_seed(0)
    TeacherLabels(names, torch.randn(len(names), 3), ["a", "b", "c"]).save(labels)
    base = ["distill", "--sessions", str(rec / "lab"), "--split", "all", "--labels", str(labels),
            "--width", "0.125", "--epochs", "1", "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "s")]) == 0
    assert "no validation: the data has no labeled Test clips" in capsys.readouterr().out
    assert (tmp_path / "s" / "best.pt").is_file()
    assert main([*base, "--out", str(tmp_path / "t"), "--val-split", "test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--val-split none" in err[0] and "no labeled Test clips" in err[0]
