"""``xmkd label`` with class maps: merged/renamed target actions, the no-label rule and
background, resume, --preview, --progress-json, open-vocabulary plumbing, and the proof that
students distilled from a merged map learn the target vocabulary and are scored in it.

The teacher is a TSN checkpoint built here (untrained, width 0.125: its scores are weak but real
model outputs); the open-vocabulary tests inject a fake teacher through
``xmkd.teachers.open_teacher`` (only the command's plumbing is under test there).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from xmkd.cli import main
from xmkd.ntu.names import SampleName
from xmkd.train.label import load_labels

# the tiny synthetic preset's classes (xmkd.synth.motion.ACTIONS[:6])
SYNTH = ["drink water", "make a phone call", "wave hand", "kick something", "write on a notepad",
         "sit down"]  # fmt: skip
#: merges and renames 5 of the 6 classes into 3 target actions; "write on a notepad" is in none
MERGE = """
[[action]]
name = "hand at the face"
teacher = ["drink water", "make a phone call"]

[[action]]
name = "greet"
teacher = ["wave hand"]

[[action]]
name = "leg movement"
teacher = ["kick something", "sit down"]
"""
TARGET_OF = {0: 0, 1: 0, 2: 1, 3: 2, 4: -1, 5: 2}  # synthetic class -> target action


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_session) -> Path:
    """A TSN teacher checkpoint over the synthetic classes (rgbdiff, width 0.125), untrained but
    for its last layer, which is re-centred and scaled on the features of the Student-Train
    clips: an untrained network scores every clip alike, this one spreads its (still arbitrary)
    scores over the classes and clips, as a trained teacher does, in a second instead of a run."""
    from xmkd.checkpoint import make_checkpoint, save_checkpoint
    from xmkd.config import teacher_preset
    from xmkd.train.inputs import TeacherClips, video_source
    from xmkd.train.teacher import build_teacher

    torch.set_num_threads(1)
    cfg = teacher_preset("synthetic", "rgbdiff", device="cpu")
    cfg = dataclasses.replace(cfg, model_kwargs={**cfg.model_kwargs, "width": 0.125})
    model = build_teacher(cfg, len(SYNTH)).eval()
    spec = cfg.input_spec(model)
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    features = []
    hook = fc.register_forward_hook(lambda m, inputs, out: features.append(inputs[0].detach()))
    clips = TeacherClips(video_source([tiny_session], cfg.modality), spec, train=False)
    with torch.no_grad():
        model(torch.stack([clips[i][0] for i in range(len(clips))]))
        hook.remove()
        f = torch.cat(features).flatten(1)
        draw = torch.randn(fc.weight.shape, generator=torch.Generator().manual_seed(0))
        weight = draw / f.std(dim=0).clamp(min=1e-6) * (2.0 / f.shape[1] ** 0.5)
        fc.weight.copy_(weight)
        fc.bias.copy_(-weight @ f.mean(dim=0))
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    payload = make_checkpoint(
        "teacher",
        [("tsn", dict(model.init_kwargs), model)],
        SYNTH,
        spec,
        config=cfg.to_dict(),
        extra={"modality": cfg.modality, "epoch": 0},
    )
    save_checkpoint(path, payload)
    return path


@pytest.fixture(scope="module")
def merge_map(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("maps") / "merge.toml"
    path.write_text(MERGE)
    return path


def label(teacher: Path, session: Path, *args: str) -> int:
    torch.set_num_threads(1)
    return main(["label", "--teacher", str(teacher), "--sessions", str(session), "--quiet", *args])


def truth_of(name: str) -> int:
    return SampleName.parse(name).label


def test_merged_map_sums_the_teachers_probabilities_and_reports_per_action(
    tmp_path, tiny_session, teacher, merge_map, capsys
):
    own, merged = tmp_path / "own.pt", tmp_path / "merged.pt"
    assert label(teacher, tiny_session, "--out", str(own)) == 0
    capsys.readouterr()
    assert label(teacher, tiny_session, "--classes", str(merge_map), "--out", str(merged)) == 0
    out = capsys.readouterr().out
    raw, cache = load_labels(own), load_labels(merged)
    assert raw.class_names == SYNTH and raw.extra["scores"] == "logits"
    assert cache.class_names == ["hand at the face", "greet", "leg movement"]
    assert cache.extra["scores"] == "log_probs" and cache.extra["teacher_kind"] == "xmkd"
    assert cache.extra["teacher_classes"] == SYNTH and cache.no_label == []
    assert [a["name"] for a in cache.extra["class_map"]["actions"]] == cache.class_names
    # each target's probability is the sum of its teacher classes' softmax
    probs = torch.softmax(raw.lookup(cache.names).double(), dim=1)
    expected = torch.stack([probs[:, 0] + probs[:, 1], probs[:, 2], probs[:, 3] + probs[:, 5]], 1)
    assert torch.allclose(cache.logits.double().exp(), expected, atol=1e-5)
    # the ground truth is in the target vocabulary ("write on a notepad" is none of them)
    assert cache.targets.tolist() == [TARGET_OF[truth_of(n)] for n in cache.names]
    pred = cache.logits.argmax(dim=1)
    known = cache.targets >= 0
    accuracy = float((pred[known] == cache.targets[known]).double().mean())
    assert f"teacher accuracy on these clips (in the target actions): {100 * accuracy:.2f}%" in out
    # the per-action table: counts add up to the clips
    counts = {a: int((pred == i).sum()) for i, a in enumerate(cache.class_names)}
    for action, count in counts.items():
        assert any(line.startswith(action) and f" {count} " in line for line in out.splitlines())
    png = tmp_path / "merged_confidence.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"histogram: {png}" in out


def test_min_confidence_leaves_clips_out_of_distillation_and_background_keeps_them(
    tmp_path, tiny_session, teacher, merge_map, capsys
):
    plain = tmp_path / "plain.pt"
    assert label(teacher, tiny_session, "--classes", str(merge_map), "--out", str(plain)) == 0
    confidence = load_labels(plain).confidence()
    # a threshold in the widest gap between the middle clips' confidences: about half fall below
    c = np.sort(confidence.numpy())
    gap = int(np.argmax(np.diff(c)[6:18])) + 6
    assert c[gap + 1] - c[gap] > 1e-5
    threshold = float(c[gap] + c[gap + 1]) / 2
    below = int((confidence < threshold).sum())
    assert below == gap + 1

    weak = tmp_path / "weak.pt"
    args = ["--classes", str(merge_map), "--min-confidence", f"{threshold!r}"]
    assert label(teacher, tiny_session, *args, "--out", str(weak)) == 0
    cache = load_labels(weak)
    assert len(cache.no_label) == below and len(cache.labeled_names()) == 24 - below
    assert set(cache.no_label) == {n for n, c in zip(cache.names, confidence) if c < threshold}
    out = capsys.readouterr().out
    assert f"(no label: below {threshold:g})" in out

    run = tmp_path / "students"
    argv = ["distill", "--sessions", str(tiny_session), "--labels", str(weak), "--out", str(run),
            "--preset", "synthetic", "--students", "stgcn", "--width", "0.125", "--epochs", "1",
            "--val-split", "none", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{below} of 24 training clips have no teacher label" in out
    events = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["samples"] == 24 - below

    bg = tmp_path / "bg.pt"
    assert label(teacher, tiny_session, *args, "--background", "--out", str(bg)) == 0
    cache = load_labels(bg)
    assert cache.class_names[-1] == "background" and cache.no_label == []
    is_background = cache.logits.argmax(dim=1) == 3
    weak_clips = cache.confidence() < threshold
    assert torch.equal(is_background & weak_clips, weak_clips)  # every weak clip is background


def test_a_resumed_run_writes_the_cache_an_uninterrupted_one_writes(
    tmp_path, tiny_session, teacher, merge_map, monkeypatch, capsys
):
    import xmkd.teachers

    args = ["--classes", str(merge_map), "--min-confidence", "0.4", "--batch-size", "4",
            "--save-every", "1"]  # fmt: skip
    whole, cut = tmp_path / "whole.pt", tmp_path / "cut.pt"
    assert label(teacher, tiny_session, *args, "--out", str(whole)) == 0

    real_open = xmkd.teachers.open_teacher

    class StopAfter(nn.Module):
        """The teacher, interrupted (Ctrl-C) in its third batch."""

        def __init__(self, model):
            super().__init__()
            self.model, self.calls = model, 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.model(x)

    def interrupted(*a, **k):
        t = real_open(*a, **k)
        return dataclasses.replace(t, model=StopAfter(t.model))

    monkeypatch.setattr(xmkd.teachers, "open_teacher", interrupted)
    assert label(teacher, tiny_session, *args, "--out", str(cut)) == 130
    assert len(load_labels(cut)) == 8  # two batches saved
    monkeypatch.setattr(xmkd.teachers, "open_teacher", real_open)
    capsys.readouterr()
    assert label(teacher, tiny_session, *args, "--out", str(cut)) == 0
    out = capsys.readouterr().out
    assert "16 labeled now" in out and "8 already there" in out
    a, b = load_labels(whole), load_labels(cut)
    assert sorted(a.names) == sorted(b.names) and set(a.no_label) == set(b.no_label)
    assert 0 < len(a.no_label) < 24
    assert torch.allclose(a.logits, b.lookup(a.names), atol=1e-5)
    assert a.targets.tolist() == [int(b.targets[b.names.index(n)]) for n in a.names]
    assert {k: v for k, v in a.extra.items()} == {k: v for k, v in b.extra.items()}
    # resuming with another threshold (or map) would mix two rules in one file: refused
    other = ["--classes", str(merge_map), "--min-confidence", "0.3"]
    assert label(teacher, tiny_session, *other, "--out", str(cut)) == 2
    assert "another class map, --min-confidence" in capsys.readouterr().err
    assert label(teacher, tiny_session, "--out", str(cut)) == 2
    assert "holds labels of other classes" in capsys.readouterr().err


def test_preview_shows_top_classes_and_their_targets_and_writes_nothing(
    tmp_path, tiny_session, teacher, merge_map, capsys
):
    before = sorted(tmp_path.iterdir())
    args = ["--classes", str(merge_map), "--preview", "4"]
    assert label(teacher, tiny_session, *args, "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4 and sorted(tmp_path.iterdir()) == before
    teacher_target = {"drink water": "hand at the face", "make a phone call": "hand at the face",
                      "wave hand": "greet", "kick something": "leg movement",
                      "sit down": "leg movement", "write on a notepad": None}  # fmt: skip
    for r in records:
        assert set(r) >= {"name", "true", "top", "label", "confidence"}
        assert r["true"] == SYNTH[truth_of(r["name"])]
        assert len(r["top"]) == 3 and r["top"][0]["p"] >= r["top"][1]["p"] >= r["top"][2]["p"]
        assert all(t["target"] == teacher_target[t["class"]] for t in r["top"])
        assert r["label"] in teacher_target.values() and 0 < r["confidence"] <= 1
    assert len({r["name"] for r in records}) == 4  # spread over the data, not the first clip
    assert label(teacher, tiny_session, *args) == 0  # the readable table
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["clip", "true"] and len(table) == 5
    assert "-> hand at the face" in "\n".join(table) or "-> leg movement" in "\n".join(table)


def test_progress_json_on_stdout(tmp_path, tiny_session, teacher, merge_map, capsys):
    out = tmp_path / "l.pt"
    args = ["--classes", str(merge_map), "--min-confidence", "0.4", "--batch-size", "8"]
    assert label(teacher, tiny_session, *args, "--out", str(out), "--progress-json", "-") == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]  # nothing but JSON
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("progress") >= 3
    assert events[0]["total"] == 24 and events[0]["classes"][0] == "hand at the face"
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done == sorted(done) and done[-1] == 24
    cache = load_labels(out)
    end = events[-1]
    assert end["labels"] == str(out) and end["labeled"] + end["no_label"] == 24
    assert end["no_label"] == len(cache.no_label) and end["accuracy"] == cache.accuracy()
    assert "teacher accuracy" in captured.err  # the people's lines go to stderr


class FakeOpenVocabulary(nn.Module):
    """Logits of each target action from a clip's index: deterministic, nothing to download."""

    def __init__(self, actions: int):
        super().__init__()
        self.actions = actions

    def forward(self, x):
        k = torch.arange(self.actions, dtype=torch.float32)
        return torch.cos(x[:, :1] * 0.7 + k) * 3.0


class IndexItems(Dataset):
    def __init__(self, raw):
        self.raw = raw

    def __len__(self):
        return len(self.raw.names)

    def __getitem__(self, i):
        return torch.tensor([float(i)]), int(self.raw.labels[i]), i


def test_open_vocabulary_teachers_get_the_prompts_and_options(
    tmp_path, tiny_session, monkeypatch, capsys
):
    import xmkd.teachers
    from xmkd.classmap import PROMPT_TEMPLATES, open_class_map
    from xmkd.teachers import VideoTeacher

    opened = []

    def fake_open(spec, weights=None, prompts=None, **options):
        opened.append((spec, prompts, options))
        return VideoTeacher(
            model=FakeOpenVocabulary(len(prompts)),
            class_names=list(prompts),
            inputs=IndexItems,
            kind="xclip",
            source=spec,
            open_vocabulary=True,
            info={"model": spec, "prompts": prompts},
        )

    monkeypatch.setattr(xmkd.teachers, "open_teacher", fake_open)
    out = tmp_path / "ov.pt"
    actions = "drink water, wave hand, sit down"
    argv = ["--actions", actions, "--temperature", "2", "--dtype", "bfloat16", "--out", str(out)]
    assert label("xclip:tiny-model", tiny_session, *argv) == 0
    spec, prompts, options = opened[-1]
    assert spec == "xclip:tiny-model" and options == {"temperature": 2.0, "dtype": "bfloat16"}
    assert prompts == {a: [t.format(name=a) for t in PROMPT_TEMPLATES] for a in
                       ["drink water", "wave hand", "sit down"]}  # fmt: skip
    cache = load_labels(out)
    assert cache.class_names == ["drink water", "wave hand", "sit down"]
    assert cache.extra["teacher_kind"] == "xclip" and cache.extra["open_vocabulary"] is True
    names = list(cache.names)
    index = torch.arange(len(names), dtype=torch.float32)[:, None]  # labeled in dataset order
    # the teacher's softmax over the actions, stored as log-probabilities
    logits = FakeOpenVocabulary(3)(index)
    assert torch.allclose(cache.logits, torch.log_softmax(logits, dim=1), atol=1e-5)
    by_name = {0: 0, 2: 1, 5: 2}  # the synthetic classes that are among the actions
    assert cache.targets.tolist() == [by_name.get(truth_of(n), -1) for n in names]
    assert "teacher accuracy on these clips (in the target actions)" in capsys.readouterr().out

    # the shipped NTU-60 map: its prompts, and the synthetic names found through its aliases
    ntu = open_class_map("ntu60")
    assert label("clip:tiny", tiny_session, "--classes", "ntu60", "--out", str(tmp_path / "n")) == 0
    assert opened[-1][1] == ntu.prompts()
    cache = load_labels(tmp_path / "n")
    assert len(cache.class_names) == 60
    hand_waving = ntu.names.index("hand waving")
    waves = [t for n, t in zip(cache.names, cache.targets.tolist()) if truth_of(n) == 2]
    assert waves and set(waves) == {hand_waving}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--classes", "ntu60", "--actions", "a", "--out", "{o}"], "either as --classes"),
        (["--out", "{o}", "--temperature", "2"], "--temperature is for xclip: and clip:"),
        (["--out", "{o}", "--clips-per-video", "2"], "--clips-per-video is for torchvision:"),
        (["--classes", "ntu60", "--out", "{o}"], "60 action(s) name no class of"),
        (["--actions", "drink water, wave hands", "--out", "{o}"],
         "'wave hands' of 'wave hands' (close: 'wave hand'"),
        ([], "--out FILE is required"),
        (["--out", "{o}", "--json"], "--json is for --preview"),
        (["--classes", "nonexistent", "--out", "{o}"], "--classes"),
    ],
)  # fmt: skip
def test_nonsense_is_one_sentence(tmp_path, tiny_session, teacher, capsys, args, says):
    args = [a.replace("{o}", str(tmp_path / "l.pt")) for a in args]
    assert label(teacher, tiny_session, *args) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and not (tmp_path / "l.pt").exists()


def test_open_vocabulary_without_actions_is_refused(tmp_path, tiny_session, capsys):
    assert label("xclip:some/model", tiny_session, "--out", str(tmp_path / "l.pt")) == 2
    assert "needs the target actions' prompts" in capsys.readouterr().err


@pytest.mark.slow
def test_students_learn_the_merged_vocabulary_and_are_scored_in_it(
    tmp_path, tiny_session, merge_map, capsys
):
    """The proof experiment, small: a TSN teacher trained on the synthetic classes labels with
    a map that merges 5 of its 6 classes into 3 renamed actions; the distilled students'
    classes are the target actions, and `xmkd eval` scores them against the mapped truth."""
    from xmkd.checkpoint import load_students

    s = str(tiny_session)
    teacher_dir = tmp_path / "teacher"
    argv = ["teacher", "train", "--sessions", s, "--preset", "synthetic", "--out",
            str(teacher_dir), "--epochs", "1", "--width", "0.125", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    labels = tmp_path / "labels.pt"
    assert label(teacher_dir / "teacher.pt", tiny_session, "--classes", str(merge_map),
                 "--out", str(labels)) == 0  # fmt: skip
    cache = load_labels(labels)
    run = tmp_path / "students"
    assert main(["distill", "--sessions", s, "--labels", str(labels), "--out", str(run),
                 "--preset", "synthetic", "--students", "stgcn,hcn", "--width", "0.125",
                 "--epochs", "1", "--quiet"]) == 0  # fmt: skip
    models, meta = load_students(run / "best.pt")
    assert meta.class_names == ["hand at the face", "greet", "leg movement"]
    assert meta.extra["class_map"] == cache.extra["class_map"]
    spec = meta.spec()
    x = torch.zeros(2, 3, spec.window, 25, spec.num_persons)
    assert all(m.eval()(x).shape == (2, 3) for m in models)  # three outputs: the targets
    capsys.readouterr()
    assert main(["eval", str(run / "best.pt"), "--sessions", s, "--quiet", "--out",
                 str(tmp_path / "eval")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "4 of 24 clips are of classes none of the students' classes stands for" in out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["class_names"] == meta.class_names
    # the confusion matrix is over the 20 Test clips whose class is a target action, rows = the
    # mapped truth: per target, how many Test clips the synthetic data has of its classes
    from xmkd.data import SkeletonDataset

    test = SkeletonDataset([s], split="test", labeled_only=True)
    truth = np.array([TARGET_OF[int(v)] for v in test.labels])
    per_target = [int((truth == t).sum()) for t in range(3)]
    for student in metrics["students"]:
        confusion = np.array(student["confusion"])
        assert confusion.shape == (3, 3) and confusion.sum(axis=1).tolist() == per_target
        assert student["top1"] == pytest.approx(np.trace(confusion) / confusion.sum())
        assert student["count"] == 20
