"""The checkpoint format: round trip, weights-only loading, clear errors, atomic saves."""

from __future__ import annotations

import collections
import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from xmkd.checkpoint import (
    load_checkpoint,
    make_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from xmkd.errors import CheckpointError


class Evil:
    """A custom class: pickling it puts a global into the file, which weights_only refuses."""

    def __init__(self):
        self.x = 1


def _tiny_payload(kind="students"):
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 50], gamma=0.1)
    train = {
        "optimizers": [opt.state_dict()],
        "schedulers": [sched.state_dict()],
        "rng": rng_state(),
        "epoch": 3,
        "step": 30,
        "history": [{"epoch": 1, "acc": np.float32(0.5)}],
    }
    return model, make_checkpoint(
        kind,
        [("linear", {"width": 4}, model)],
        ["a", "b", "c"],
        {"window": 32, "max_bodies": 2},
        config={"lr": 0.1, "milestones": (10, 50)},
        extra={"modality": "rgbdiff"},
        train=train,
    )


def test_round_trip_loads_with_weights_only(tmp_path):
    model, payload = _tiny_payload()
    path = save_checkpoint(tmp_path / "run" / "last.pt", payload)
    # readable by plain torch with weights_only=True: no custom globals in the file
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "xmkd-checkpoint" and raw["kind"] == "students"
    data = load_checkpoint(path, kind="students")
    assert data["class_names"] == ["a", "b", "c"] and data["num_classes"] == 3
    assert data["input_spec"] == {"window": 32, "max_bodies": 2}
    state = data["models"][0]["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v)
    assert data["train"]["epoch"] == 3
    assert isinstance(data["train"]["history"][0]["acc"], float)
    # scheduler milestones survive as a Counter, so MultiStepLR works after load
    sched_state = data["train"]["schedulers"][0]
    assert isinstance(sched_state["milestones"], collections.Counter)
    opt = torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1, momentum=0.9, nesterov=True)
    opt.load_state_dict(data["train"]["optimizers"][0])
    assert opt.state_dict()["param_groups"][0]["nesterov"] is True
    # no temporary files left behind
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["last.pt"]


def test_rng_state_restores_every_generator():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_rejects_pickle_with_custom_class(tmp_path):
    _, payload = _tiny_payload()
    payload["extra"] = {"evil": Evil()}
    bad = tmp_path / "evil.pt"
    torch.save(payload, bad)  # plain torch.save pickles the class by reference
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    assert str(bad) in str(err.value) and "could run code" in str(err.value)
    # and save_checkpoint refuses to write such a thing in the first place
    with pytest.raises(CheckpointError, match="Evil"):
        save_checkpoint(tmp_path / "x.pt", payload)
    assert not (tmp_path / "x.pt").exists()


def test_rejects_plain_pickle_and_truncated_file(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"format": "xmkd-checkpoint"}))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(plain)
    _, payload = _tiny_payload()
    good = save_checkpoint(tmp_path / "good.pt", payload)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(cut)
    assert str(cut) in str(err.value) and "truncated" in str(err.value)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rejects_wrong_kind_and_foreign_dict(tmp_path):
    _, payload = _tiny_payload(kind="teacher")
    path = save_checkpoint(tmp_path / "teacher.pt", payload)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, kind="students")
    assert str(path) in str(err.value) and "'teacher'" in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": nn.Linear(2, 2).state_dict()}, foreign)
    with pytest.raises(CheckpointError, match="not an xmkd checkpoint"):
        load_checkpoint(foreign)
    newer = dict(payload, version=99)
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(tmp_path / "newer.pt")


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    model, payload = _tiny_payload()
    path = save_checkpoint(tmp_path / "last.pt", payload)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(path, payload)
    assert str(path) in str(err.value) and "No space left" in str(err.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_load_students_rebuilds_the_ensemble(tmp_path):
    from xmkd.checkpoint import load_students
    from xmkd.models import build_student

    torch.manual_seed(0)
    specs = [("stgcn", {"width": 0.125}), ("hcn", {"width": 0.125, "window_size": 16})]
    models = [build_student(arch, 4, **kw) for arch, kw in specs]
    payload = make_checkpoint(
        "students",
        [(arch, kw, m) for (arch, kw), m in zip(specs, models)],
        ["w", "x", "y", "z"],
        {"window": 16},
        ensemble="max",
    )
    path = save_checkpoint(tmp_path / "students.pt", payload)
    loaded, meta = load_students(path)
    assert meta.archs == ["stgcn", "hcn"] and meta.class_names == ["w", "x", "y", "z"]
    assert meta.ensemble == "max" and meta.input_spec == {"window": 16} and meta.num_classes == 4
    x = torch.randn(2, 3, 16, 25, 2)
    for original, copy in zip(models, loaded):
        assert not copy.training
        assert torch.allclose(original.eval()(x), copy(x))
    # weights that do not fit the recorded architecture: a clear error naming the file
    payload["models"][0]["kwargs"] = {"width": 0.25}
    bad = save_checkpoint(tmp_path / "bad.pt", payload)
    with pytest.raises(CheckpointError, match="bad.pt: student 0"):
        load_students(bad)


# --- bad checkpoints: named fields, sizes checked before allocation, digests, NaN weights ------


def _students_payload():
    from xmkd.models import build_student

    torch.manual_seed(0)
    model = build_student("stgcn", 3, width=0.125)
    payload = make_checkpoint(
        "students", [("stgcn", {"width": 0.125}, model)], ["a", "b", "c"], {"window": 16}
    )
    return model, payload


@pytest.mark.parametrize("key", ["input_spec", "class_names", "models"])
def test_missing_field_is_named(tmp_path, key):
    from xmkd.checkpoint import load_students

    _, payload = _students_payload()
    del payload[key]
    path = tmp_path / "old.pt"
    torch.save(payload, path)  # as a foreign or damaged writer would
    with pytest.raises(CheckpointError, match=rf"old.pt: the checkpoint field '{key}' is missing"):
        load_students(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("input_spec", 5, r"field 'input_spec' must be Mapping, not a int"),
        ("class_names", "abc", r"field 'class_names' must be list, not a str"),
        ("num_classes", "3", r"field 'num_classes' must be int, not a str"),
        ("num_classes", 7, r"num_classes is 7 but there are 3 class names"),
        ("input_spec", {"window": "x"}, r"the input_spec is not valid"),
        ("input_spec", {"window": 10**9}, r"input_spec window must be a whole number from 1"),
        ("input_spec", {"num_persons": 10**6}, r"input_spec num_persons must be"),
        ("input_spec", {"bogus": 1}, r"unknown input spec field"),
    ],
)
def test_ill_typed_fields_are_named(tmp_path, key, value, message):
    from xmkd.checkpoint import load_students

    _, payload = _students_payload()
    payload[key] = value
    path = tmp_path / "typed.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"typed.pt: .*{message}"):
        load_students(path)


@pytest.mark.parametrize(
    ("arch", "kwargs", "message"),
    [
        ("stgcn", {"width": 1e6}, r"width=1000000.0 is outside its sane range"),
        ("stgcn", {"width": float("nan")}, r"width=nan is outside its sane range"),
        ("stgcn", {"width": 60.0}, r"would have 10,986,702,551 parameters \(40.9 GiB\)"),
        ("hcn", {"window_size": 8992}, r"would have [\d,]+ parameters"),
        ("hcn", {"window_size": 10**12}, r"window_size=1000000000000 is outside"),
        ("hcn", {"num_person": 10**9}, r"num_person=1000000000 is outside"),
    ],
)
def test_absurd_sizes_are_refused_before_allocation(tmp_path, arch, kwargs, message):
    """A corrupt checkpoint asking for a 40 GB network fails at once (built on the meta device
    to count, never allocated)."""
    import time

    from xmkd.checkpoint import load_students

    _, payload = _students_payload()
    payload["models"][0]["arch"] = arch
    payload["models"][0]["kwargs"] = kwargs
    path = tmp_path / "huge.pt"
    torch.save(payload, path)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"huge.pt: student 0 .*{message}"):
        load_students(path)
    assert time.perf_counter() - start < 20  # allocating would take minutes or fail


def test_flipped_weight_bit_is_detected_by_the_digest(tmp_path):
    from xmkd.checkpoint import load_students

    model, payload = _students_payload()
    path = save_checkpoint(tmp_path / "good.pt", payload)
    assert torch.load(path, weights_only=True)["models"][0]["digest"].startswith("sha256:")
    load_students(path)
    raw = bytearray(path.read_bytes())
    weight = model.state_dict()["fcn.weight"].numpy().tobytes()
    at = bytes(raw).find(weight)
    assert at > 0
    raw[at + len(weight) // 2] ^= 0x04  # one bit of one weight: still a finite float
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(
        CheckpointError,
        match=r"flipped.pt: weights do not match their stored digest \(the file is corrupt\)",
    ):
        load_students(bad)


def test_checkpoints_without_digest_still_load(tmp_path):
    from xmkd.checkpoint import load_students

    model, payload = _students_payload()
    path = tmp_path / "v1.pt"
    torch.save(payload, path)  # written before digests existed
    (loaded,), meta = load_students(path)
    assert torch.equal(loaded.state_dict()["fcn.weight"], model.state_dict()["fcn.weight"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_weights_are_refused(tmp_path, bad):
    from xmkd.checkpoint import load_students

    model, payload = _students_payload()
    payload["models"][0]["state_dict"]["fcn.bias"][1] = bad
    path = save_checkpoint(tmp_path / "nan.pt", payload)  # digest over the NaN: not "corrupt"
    with pytest.raises(CheckpointError, match=r"nan.pt: model 0 \(stgcn\) weight 'fcn.bias' holds"):
        load_students(path)
