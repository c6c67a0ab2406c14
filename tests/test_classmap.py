"""Class maps (xmkd.classmap): the shipped maps, the TOML checks, the target-probability and
no-label rule, ground truth in the target vocabulary, and the label cache's new fields."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from xmkd.classmap import (
    BACKGROUND,
    PROMPT_TEMPLATES,
    ClassMap,
    LabelRule,
    TargetAction,
    dataset_targets,
    in_target_vocabulary,
    load_class_map,
    ntu60_action_names,
    open_class_map,
    resolve_class_map,
    same_rule,
    shipped_class_maps,
)
from xmkd.errors import XmkdError
from xmkd.train.label import TeacherLabels, labeled_subset, load_labels

TEACHER = ["drinking", "drinking beer", "texting", "clapping", "applauding", "yoga"]
MERGE = """
[[action]]
name = "drink water"
teacher = ["drinking", "drinking beer"]
prompts = ["a person drinking water"]

[[action]]
name = "clap"
teacher = ["clapping", "applauding"]
aliases = ["A010"]
"""


def write(tmp_path: Path, text: str, name: str = "map.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- shipped maps
def test_ntu60_map_is_ntus_sixty_actions_in_order_with_prompts():
    cmap = open_class_map("ntu60")
    names = ntu60_action_names()
    assert cmap.names == names and len(names) == 60
    # the actions of the real samples in ../shared (their README) and a few well-known codes
    for code, name in [(1, "drink water"), (3, "brushing teeth"), (11, "reading"),
                       (17, "take off a shoe"), (34, "rub two hands together"), (43, "falling"),
                       (58, "handshaking"), (60, "walking apart from each other")]:  # fmt: skip
        assert names[code - 1] == name
    for i, action in enumerate(cmap.actions, start=1):
        assert 1 <= len(action.prompts) <= 3, action.name
        assert action.aliases[0] == f"A{i:03d}"
        assert not action.teacher  # prompts only: a closed-set teacher needs the Kinetics map
    # the synthetic library's names find their NTU action (ground truth on xmkd synth data)
    synth = ["drink water", "make a phone call", "wave hand", "kick something", "sit down"]
    assert [names[t] for t in dataset_targets(synth, names, cmap)] == [
        "drink water",
        "make a phone call/answer phone",
        "hand waving",
        "kicking something",
        "sitting down",
    ]


def test_kinetics_map_names_exact_kinetics_classes_and_lists_the_actions_without_one():
    from torchvision.models.video import R3D_18_Weights

    kinetics = R3D_18_Weights.DEFAULT.meta["categories"]
    assert len(kinetics) == 400
    path = resolve_class_map("ntu60_from_kinetics400")
    cmap = load_class_map(path)
    cmap.check_against(kinetics, "Kinetics-400")  # every teacher name is a category
    ntu = ntu60_action_names()
    assert [n for n in ntu if n in cmap.names] == cmap.names  # NTU's order, NTU's names
    assert 15 <= len(cmap) < 60
    ntu_map = open_class_map("ntu60")
    for action in cmap.actions:  # the same aliases (ground truth) as the NTU-60 map
        assert action.aliases == ntu_map.actions[ntu.index(action.name)].aliases
    comments = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    without = [f"A{i:03d} {n}" for i, n in enumerate(ntu, start=1) if n not in cmap.names]
    listed = re.findall(r"^#\s+(A\d{3} .+)$", comments, flags=re.M)
    assert listed == without
    assert set(shipped_class_maps()) >= {"ntu60", "ntu60_from_kinetics400"}
    assert resolve_class_map("ntu60.toml") == resolve_class_map("ntu60")


# ----------------------------------------------------------------------------- file checks
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[action]]\nname = "a"\n[[action]]\nname = "b"\nteachr = ["x"]\n',
         "[[action]] 2 ('b'): unknown key(s) teachr"),
        ('[[action]]\nname = "a"\n[[action]]\nname = "  "\n', "[[action]] 2: needs a non-empty"),
        ('[[action]]\nname = "a"\n[[action]]\nname = "A"\n', "[[action]] 2: the name 'A' is "
         "already [[action]] 1"),
        ('[[action]]\nname = "a"\nteacher = ["x"]\n[[action]]\nname = "b"\nteacher = ["x"]\n',
         "[[action]] 2 ('b'): teacher 'x' is already claimed by [[action]] 1 ('a')"),
        ('[[action]]\nname = "a"\nteacher = "x"\n', "[[action]] 1 ('a'): key 'teacher' must be "
         "a list"),
        ('[[action]]\nname = "a"\nprompts = ["p", "p"]\n', "key 'prompts' lists 'p' twice"),
        ('[[action]]\nname = "a"\naliases = ["b"]\n[[action]]\nname = "b"\n',
         "alias 'b' is the name of [[action]] 2"),
        ('[[action]]\nname = "background"\n', "'background' is reserved"),
        ('classes = 3\n[[action]]\nname = "a"\n', "unknown top-level key(s) classes"),
        ('title = "nothing"\n', "names no target action"),
        ('[[action]\nname = "a"\n', "is not valid TOML"),
    ],
)  # fmt: skip
def test_bad_maps_name_the_file_the_action_and_the_key(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(XmkdError) as err:
        load_class_map(path)
    assert str(err.value).startswith(str(path)) and says in str(err.value)


def test_missing_map_and_unknown_short_name(tmp_path):
    with pytest.raises(XmkdError, match="neither a class map file nor a shipped map"):
        resolve_class_map(str(tmp_path / "nope.toml"))
    with pytest.raises(XmkdError, match="cannot read the class map"):
        load_class_map(tmp_path / "nope.toml")


def test_check_against_lists_unknown_classes_with_close_matches(tmp_path):
    cmap = load_class_map(write(tmp_path, MERGE.replace('"applauding"', '"aplauding"')))
    with pytest.raises(XmkdError) as err:
        cmap.check_against(TEACHER, "the TSN")
    assert "'aplauding' of 'clap' (close: 'applauding'" in str(err.value)
    assert "1 teacher class name(s) are not classes of the TSN" in str(err.value)
    no_teacher = ClassMap([TargetAction("wave")], "m.toml")
    with pytest.raises(XmkdError, match="1 action\\(s\\) name no class of .*'wave'"):
        no_teacher.check_against(TEACHER)


def test_from_names_uses_the_names_as_teacher_classes_and_templated_prompts():
    cmap = ClassMap.from_names([" drinking ", "clapping", ""])
    assert cmap.names == ["drinking", "clapping"]
    assert cmap.actions[0].teacher == ("drinking",)
    assert cmap.prompts()["clapping"] == [t.format(name="clapping") for t in PROMPT_TEMPLATES]
    cmap.check_against(TEACHER)
    with pytest.raises(XmkdError, match="already"):
        ClassMap.from_names(["a", "A"])
    # a map action without prompts gets the templates too; to_dict/from_dict round-trips
    plain = ClassMap([TargetAction("sit", ("x",))], "f").to_dict()
    assert ClassMap.from_dict(plain).prompts()["sit"][0] == PROMPT_TEMPLATES[0].format(name="sit")
    assert ClassMap.from_dict(plain).to_dict() == plain


# ----------------------------------------------------------------------------- the rule
def test_target_probabilities_are_summed_and_weak_clips_get_no_label(tmp_path):
    cmap = load_class_map(write(tmp_path, MERGE))
    # rows: drink (two classes); clap, split over two classes; texting/yoga (off-vocabulary)
    logits = torch.tensor([[4.0, 3.0, 0.0, 0.0, 0.0, 0.0],
                           [0.0, 0.0, 0.0, 1.0, 1.0, 0.0],
                           [0.0, 0.0, 5.0, 0.0, 0.0, 5.0]])  # fmt: skip
    probs = torch.softmax(logits.double(), dim=1)
    expected = torch.stack([probs[:, 0] + probs[:, 1], probs[:, 3] + probs[:, 4]], dim=1)
    assert torch.allclose(cmap.apply(probs, TEACHER), expected)
    rule = LabelRule(TEACHER, cmap, min_confidence=0.3)
    assert rule.target_names == ["drink water", "clap"] and rule.scores == "log_probs"
    stored, confidence, labeled = rule.map_logits(logits)
    assert torch.allclose(stored.double().exp(), expected, atol=1e-6)
    assert torch.allclose(confidence.double(), expected.max(dim=1).values, atol=1e-6)
    assert labeled.tolist() == [True, True, False]  # the third's best action has < 0.3
    assert rule.action_of_teacher_class(1) == "drink water"
    assert rule.action_of_teacher_class(5) is None

    bg = LabelRule(TEACHER, cmap, min_confidence=0.3, background=True)
    stored, _, labeled = bg.map_logits(logits)
    assert bg.target_names == ["drink water", "clap", BACKGROUND] and bool(labeled.all())
    mass = stored.double().exp()
    assert torch.allclose(mass[:2, 2], 1 - expected[:2].sum(dim=1), atol=1e-6)  # off-vocab mass
    assert stored.argmax(dim=1).tolist() == [0, 1, 2]  # the weak clip's label is background
    # min_confidence 0 with background: the off-vocabulary mass decides
    stored, _, _ = LabelRule(TEACHER, cmap, background=True).map_logits(logits)
    assert stored.argmax(dim=1).tolist() == [0, 1, 2]


def test_own_classes_keep_the_logits_and_open_vocabulary_is_one_to_one():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    own = LabelRule(["a", "b", "c"], min_confidence=0.5)
    stored, confidence, labeled = own.map_logits(logits)
    assert torch.equal(stored, logits) and own.scores == "logits"
    assert labeled.tolist() == [True, False]
    assert confidence[0] == pytest.approx(float(torch.softmax(logits[0], 0)[0]))
    actions = ClassMap.from_names(["a", "b", "c"])
    ov = LabelRule(["a", "b", "c"], actions, open_vocabulary=True)
    stored, _, _ = ov.map_logits(logits)
    assert torch.allclose(stored, torch.log_softmax(logits, dim=1), atol=1e-6)
    with pytest.raises(XmkdError, match="scores 2 classes, not the 3 actions"):
        LabelRule(["a", "b"], actions, open_vocabulary=True)
    with pytest.raises(XmkdError, match="min-confidence"):
        LabelRule(["a"], min_confidence=1.0)


def test_same_rule_accepts_old_caches_only_for_the_plain_rule(tmp_path):
    cmap = load_class_map(write(tmp_path, MERGE))
    rule = LabelRule(TEACHER, cmap, min_confidence=0.2)
    assert same_rule(rule.facts(), rule, rule.target_names)
    assert not same_rule({**rule.facts(), "min_confidence": 0.3}, rule, rule.target_names)
    assert not same_rule({}, rule, rule.target_names)  # an old cache: the teacher's classes
    assert same_rule({}, LabelRule(TEACHER), TEACHER)
    moved = {**rule.facts(), "class_map": {**cmap.to_dict(), "source": "elsewhere.toml"}}
    assert same_rule(moved, rule, rule.target_names)  # the same map read from another path


# ----------------------------------------------------------------------------- ground truth
def test_ground_truth_in_the_target_vocabulary(tmp_path):
    cmap = load_class_map(write(tmp_path, MERGE))
    data = ["Drinking", "drinking beer", "clap", "A010", "yoga", "DRINK WATER"]
    assert dataset_targets(data, cmap.names, cmap).tolist() == [0, 0, 1, 1, -1, 0]
    assert dataset_targets(data, cmap.names, cmap.to_dict()).tolist() == [0, 0, 1, 1, -1, 0]
    assert dataset_targets(data, cmap.names).tolist() == [-1, -1, 1, -1, -1, 0]  # names only
    assert dataset_targets(None, cmap.names, cmap).tolist() == []

    class Items(torch.utils.data.Dataset):
        names = ["s0", "s1", "s2", "s3"]
        labels = np.array([0, 2, 4, 5])

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(1), int(self.labels[i]), i

    items = Items()
    mapped = in_target_vocabulary(items, data, cmap.names, cmap)
    assert mapped.labels.tolist() == [0, 1, -1, 0]
    assert [mapped[i][1] for i in range(4)] == [0, 1, -1, 0]
    assert in_target_vocabulary(items, cmap.names, cmap.names, cmap) is items
    with pytest.raises(XmkdError, match="nothing to score"):
        in_target_vocabulary(items, ["yoga", "texting"], cmap.names, cmap)


# ----------------------------------------------------------------------------- the cache
def test_label_cache_keeps_no_label_clips_and_old_files_load(tmp_path):
    logits = torch.log(torch.tensor([[0.7, 0.2], [0.3, 0.1], [0.1, 0.8]]))
    cache = TeacherLabels(
        ["a", "b", "c"],
        logits,
        ["x", "y"],
        targets=torch.tensor([0, 0, 0]),
        extra={"scores": "log_probs"},
        no_label=["b"],
    )
    assert cache.labeled_names() == ["a", "c"]
    assert cache.predictions().tolist() == [0, -1, 1]
    assert torch.allclose(cache.confidence(), torch.tensor([0.7, 0.3, 0.8]))
    assert cache.accuracy() == pytest.approx(0.5)  # a right, c wrong; b has no label
    back = load_labels(cache.save(tmp_path / "l.pt"))
    assert back.no_label == ["b"] and back.extra["scores"] == "log_probs"
    # a version-1 file (before class maps) still loads: every clip labeled, logits softmaxed
    old = {k: v for k, v in cache.to_dict().items() if k != "no_label"}
    old.update(version=1, extra={})
    torch.save(old, tmp_path / "old.pt")
    v1 = load_labels(tmp_path / "old.pt")
    assert v1.no_label == [] and v1.labeled_names() == ["a", "b", "c"]
    assert v1.confidence()[1] == pytest.approx(0.75)  # softmax of log(0.3), log(0.1)
    with pytest.raises(ValueError, match="no_label"):
        TeacherLabels(["a"], torch.zeros(1, 2), ["x", "y"], no_label=["z"])


def test_labeled_subset_reindexes_and_keeps_the_base_index_for_augmentation():
    class Windows(torch.utils.data.Dataset):
        names = ["a", "b", "c", "d"]
        labels = np.array([0, 1, 0, 1])
        epochs: list[int] = []

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.full((1,), float(i)), int(self.labels[i]), i

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    cache = TeacherLabels(list("abcd"), torch.zeros(4, 2), ["x", "y"], no_label=["b"])
    kept, dropped = labeled_subset(Windows(), cache)
    assert dropped == 1 and kept.names == ["a", "c", "d"] and kept.labels.tolist() == [0, 0, 1]
    x, label, index = kept[1]
    assert float(x) == 2.0 and label == 0 and index == 1  # base item 2, subset position 1
    kept.set_epoch(3)
    assert Windows.epochs == [3]
    full = TeacherLabels(list("abcd"), torch.zeros(4, 2), ["x", "y"])
    base = Windows()
    assert labeled_subset(base, full) == (base, 0)


def test_label_dataset_maps_the_truth_and_marks_weak_clips(tmp_path):
    from xmkd.train.label import label_dataset

    class Clips(torch.utils.data.Dataset):
        labels = [0, 1, 2, 3, -1]

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.eye(5)[i], self.labels[i], i

    model = torch.nn.Linear(5, 4, bias=False)
    with torch.no_grad():  # clip i scores class i (clip 4: uniform)
        model.weight.copy_(torch.eye(4, 5) * 3.0)
    names = [f"c{i}" for i in range(5)]
    classes = ["a", "b", "c", "d"]

    def run(out, cmap, data_classes, min_confidence=0.0):
        rule = LabelRule(classes, cmap, min_confidence=min_confidence)
        out = tmp_path / out
        return label_dataset(
            model,
            Clips(),
            names,
            out,
            classes,
            rule=rule,
            data_classes=data_classes,
            batch_size=2,
            progress=False,
        )[0]

    same = ClassMap([TargetAction(c, (c,)) for c in classes], "m")
    assert run("same.pt", same, classes).targets.tolist() == [0, 1, 2, 3, -1]
    merged = ClassMap([TargetAction("ab", ("a", "b")), TargetAction("d", ("d",))], "m")
    cache = run("merged.pt", merged, classes, min_confidence=0.6)
    assert cache.targets.tolist() == [0, 0, -1, 1, -1]  # "c" is no target action
    assert cache.no_label == ["c2", "c4"]  # c2's mass is on "c"; c4's best is 0.5
    assert run("unknown.pt", merged, None).targets.tolist() == [-1] * 5
    own = run("own.pt", None, None)  # no map, classes unknown: the labels as they are
    assert own.targets.tolist() == [0, 1, 2, 3, -1] and torch.equal(
        own.logits, model(torch.eye(5)).detach()
    )
