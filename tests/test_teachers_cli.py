"""The pretrained and open-vocabulary teachers through the command line, end to end: a randomly
initialised torchvision network saved as a weights file and a tiny local X-CLIP / CLIP label a
synthetic session with ``xmkd label``, and students distilled from the open-vocabulary labels
learn the typed action names. (Each teacher's own behaviour is tested in test_teachers_*.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tiny_hf import make_tiny_clip, make_tiny_xclip
from xmkd.cli import main
from xmkd.train.label import load_labels

#: Kinetics-400 classes standing for the first two synthetic actions
KINETICS_MAP = """
[[action]]
name = "drink water"
teacher = ["drinking", "drinking beer", "drinking shots", "tasting beer"]

[[action]]
name = "make a phone call"
teacher = ["texting", "using remote controller (not gaming)"]
"""


@pytest.fixture(scope="module")
def micro_session(tmp_path_factory) -> Path:
    """Three synthetic clips (one Student-Train subject, one view, three actions): a
    torchvision network costs about a second per clip on a CPU."""
    from xmkd.synth import generate, preset
    from xmkd.synth.generator import tiny_subjects

    subject = tiny_subjects(per_split=1)[1]  # teacher_train, student_train, test: the second
    config = preset("tiny", classes=3, subjects=(subject,), views=(1,), flow=False)
    return generate(config, tmp_path_factory.mktemp("micro"), workers=1).session_dir


@pytest.mark.slow
def test_torchvision_teacher_labels_through_a_class_map(tmp_path, micro_session, capsys):
    from torchvision.models.video import r3d_18

    torch.manual_seed(0)
    weights = tmp_path / "r3d_18.pth"
    torch.save(r3d_18().state_dict(), weights)
    class_map = tmp_path / "map.toml"
    class_map.write_text(KINETICS_MAP)
    torch.set_num_threads(2)
    common = ["label", "--teacher", "torchvision:r3d_18", "--weights", str(weights), "--classes",
              str(class_map), "--sessions", str(micro_session), "--split", "all"]  # fmt: skip
    assert main([*common, "--preview", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(rows) == 2
    kinetics = set(load_kinetics_names())
    for row in rows:  # the teacher's own (Kinetics) classes, each with the target it maps to
        assert len(row["top"]) == 3 and all(t["class"] in kinetics for t in row["top"])
        assert row["true"] in ("drink water", "make a phone call", "wave hand")  # its own class
    out = tmp_path / "labels.pt"
    assert main([*common, "--out", str(out), "--quiet"]) == 0
    cache = load_labels(out)
    assert cache.class_names == ["drink water", "make a phone call"]
    assert len(cache) == 3 and cache.logits.shape == (3, 2)
    assert cache.extra["teacher_kind"] == "torchvision"
    # the third clip (wave hand) is no target action: no truth for it
    assert sorted(cache.targets.tolist()) == [-1, 0, 1]
    assert out.with_name("labels_confidence.png").is_file()
    # log of summed probabilities: the mass on the mapped Kinetics classes, below 1
    assert bool((cache.logits.exp().sum(dim=1) < 1).all())


def load_kinetics_names() -> list[str]:
    from torchvision.models.video import R3D_18_Weights

    return list(R3D_18_Weights.DEFAULT.meta["categories"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["xclip", "clip"])
def test_open_vocabulary_teacher_labels_and_students_learn_the_typed_actions(
    tmp_path, tiny_session, kind, capsys
):
    from xmkd.checkpoint import load_students

    folder = (make_tiny_xclip if kind == "xclip" else make_tiny_clip)(tmp_path / kind)
    actions = ["drink water", "make a phone call", "wave hand", "kick something",
               "write on a notepad", "sit down"]  # fmt: skip
    labels = tmp_path / "labels.pt"
    torch.set_num_threads(2)
    argv = ["label", "--teacher", f"{kind}:{folder}", "--actions", ", ".join(actions),
            "--sessions", str(tiny_session), "--out", str(labels), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "teacher accuracy on these clips" in out  # the session's classes are the actions
    cache = load_labels(labels)
    assert cache.class_names == actions and cache.extra["open_vocabulary"] is True
    assert len(cache) == 24 and bool((cache.targets >= 0).all())
    if kind == "clip":  # the students' side is the same for both kinds: distill once
        return
    run = tmp_path / "students"
    assert main(["distill", "--sessions", str(tiny_session), "--labels", str(labels),
                 "--out", str(run), "--preset", "synthetic", "--width", "0.125",
                 "--epochs", "1", "--quiet"]) == 0  # fmt: skip
    _, meta = load_students(run / "best.pt")
    assert meta.class_names == actions
