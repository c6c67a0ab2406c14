"""Datasets over sessions (skeleton and video) and over packed NTU."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from xmkd.data import SkeletonDataset, VideoDataset
from xmkd.errors import XmkdError
from xmkd.ntu import read_skeleton, to_model_array
from xmkd.ntu.splits import protocol_split
from xmkd.recordings import Session, read_video
from xmkd.synth import preset


@pytest.fixture(scope="module")
def skeletons(tiny_session: Path) -> SkeletonDataset:
    return SkeletonDataset(tiny_session)


def test_skeleton_items_are_the_model_layout(skeletons: SkeletonDataset, tiny_session) -> None:
    cfg = preset("tiny")
    assert len(skeletons) == cfg.num_clips
    x, label, index = skeletons[5]
    assert x.dtype == torch.float32 and x.shape == (3, cfg.frames, 25, 2)
    name = skeletons.names[index]
    assert index == 5 and label == int(name[-3:]) - 1
    expected, valid = to_model_array(read_skeleton(Session.open(tiny_session).clip(name).skeleton))
    assert np.array_equal(x.numpy(), expected)
    assert skeletons.valid_frames[5] == valid
    assert skeletons.num_classes == cfg.classes
    assert skeletons.class_names[0] == "drink water"


def test_split_and_name_filters(tiny_session: Path, skeletons: SkeletonDataset) -> None:
    parts = {s: SkeletonDataset(tiny_session, split=s) for s in ("teacher_train", "test")}
    for split, ds in parts.items():
        assert len(ds) > 0 and all(protocol_split(n) == split for n in ds.names)
    student = SkeletonDataset(tiny_session, split="student_train")
    assert len(student) + sum(map(len, parts.values())) == len(skeletons)
    chosen = skeletons.names[3:7]
    subset = SkeletonDataset(tiny_session, names=chosen, return_name=True)
    assert subset.names == chosen
    x, label, index, name = subset[2]
    assert name == chosen[2] and torch.equal(x, skeletons[3 + 2][0])
    both = SkeletonDataset(tiny_session, names=chosen, split="test")
    assert set(both.names) <= set(chosen)
    with pytest.raises(XmkdError, match="not in the data"):
        SkeletonDataset(tiny_session, names=["S001C001P099R001A001"])
    with pytest.raises(XmkdError, match="unknown split"):
        SkeletonDataset(tiny_session, split="train")


def _double(x: np.ndarray, valid: int, calls: list) -> np.ndarray:
    calls.append(valid)
    return x[:, :valid:2] * 2


def test_transform_and_loader_workers(skeletons: SkeletonDataset, tiny_session) -> None:
    calls: list[int] = []
    ds = SkeletonDataset(
        tiny_session, split="test", transform=functools.partial(_double, calls=calls)
    )
    x, _, i = ds[0]
    assert calls == [ds.valid_frames[0]]
    assert x.shape == (3, (ds.valid_frames[0] + 1) // 2, 25, 2)
    assert torch.allclose(x, torch.as_tensor(ds.data[i][:, ::2][:, : x.shape[1]] * 2))
    # picklable items and cached arrays: two worker processes yield the same batches
    plain = SkeletonDataset(tiny_session, split="test")
    loader = DataLoader(plain, batch_size=8, num_workers=2)
    xs, labels, idx = zip(*loader)
    assert torch.equal(torch.cat(xs), torch.as_tensor(plain.data))
    assert torch.equal(torch.cat(labels), torch.as_tensor(plain.labels))


def test_max_frames_pads_and_crops(tiny_session: Path) -> None:
    long = SkeletonDataset(tiny_session, split="test", max_frames=50)
    short = SkeletonDataset(tiny_session, split="test", max_frames=16)
    assert long[0][0].shape[1] == 50 and short[0][0].shape[1] == 16
    assert torch.all(long[0][0][:, 40:] == 0)
    assert torch.equal(long[0][0][:, :16], short[0][0])
    assert short.valid_frames.max() == 16


def test_unlabeled_clips_have_label_minus_one(tiny_session: Path, tmp_path: Path) -> None:
    """A copy of two clips renamed to A000 (as recordings are) yields label -1."""
    session = Session.open(tiny_session)
    root = tmp_path / "rec"
    (root / "skeletons").mkdir(parents=True)
    info = json.loads((tiny_session / "session.json").read_text())
    entries = []
    for clip in (session.clips[0], session.clips[-1]):  # different subjects: distinct A000 names
        new = clip.name[:-3] + "000"
        shutil.copy(clip.skeleton, root / "skeletons" / f"{new}.skeleton")
        entries.append({"name": new, "frames": clip.frames})
    info["clips"] = entries
    (root / "session.json").write_text(json.dumps(info))
    ds = SkeletonDataset([root, tiny_session])
    assert len(ds) == len(session) + 2
    labels = dict(zip(ds.names, ds.labels.tolist()))
    assert labels[entries[0]["name"]] == -1 and labels[session.clips[0].name] >= 0
    assert len(SkeletonDataset([root, tiny_session], labeled_only=True)) == len(session)
    with pytest.raises(XmkdError, match="no video"):
        VideoDataset(root)
    with pytest.raises(XmkdError, match="more than one"):
        SkeletonDataset([tiny_session, tiny_session])


def test_video_items_rgb_and_flow(tiny_session: Path) -> None:
    cfg = preset("tiny")
    ds = VideoDataset(tiny_session, split="teacher_train", return_name=True)
    x, label, index, name = ds[1]
    assert x.dtype == torch.uint8 and x.shape == (cfg.frames, cfg.height, cfg.width, 3)
    bgr = read_video(Session.open(tiny_session).clip(name).video)
    assert np.array_equal(x.numpy(), bgr[..., ::-1])  # RGB order
    assert label == int(name[-3:]) - 1 and ds.names[index] == name
    flow = VideoDataset(tiny_session, names=[name], modality="flow")[0][0]
    assert flow.dtype == torch.uint8 and flow.shape == (cfg.frames - 1, cfg.height, cfg.width, 2)
    both = VideoDataset(tiny_session, names=[name], modality="rgb+flow", cache=True)
    item = both[0][0]
    assert set(item) == {"rgb", "flow"} and torch.equal(item["rgb"], x)
    assert both.load(0) is both.load(0)  # cached
    seen = VideoDataset(tiny_session, names=[name], transform=lambda v: v[::8].copy())[0][0]
    assert seen.shape[0] == (cfg.frames + 7) // 8
    with pytest.raises(XmkdError, match="unknown modality"):
        VideoDataset(tiny_session, modality="depth")


def test_packed_ntu_items_match_the_session_items(tiny_session: Path, tmp_path: Path) -> None:
    from xmkd.data import PackedSkeletonDataset
    from xmkd.ntu.pack import PackedNTU, PackOptions, pack_ntu

    pack_ntu(tiny_session / "skeletons", tmp_path, PackOptions(max_frames=64), 1, False)
    packed = PackedSkeletonDataset(tmp_path, split="teacher_train", return_name=True)
    direct = SkeletonDataset(tiny_session, split="teacher_train")
    assert sorted(packed.names) == sorted(direct.names)
    x, label, index, name = packed[3]
    j = direct.names.index(name)
    assert x.shape == (3, 64, 25, 2) and label == direct.labels[j]
    assert torch.equal(x[:, : direct.max_frames], direct[j][0])
    assert torch.all(x[:, direct.max_frames :] == 0)
    assert packed.valid_frames[index] == direct.valid_frames[j]
    # a "train" part filtered by protocol split gives the same samples
    train = PackedSkeletonDataset(PackedNTU(tmp_path, "train"), split="teacher_train")
    assert sorted(train.names) == sorted(direct.names)
    with pytest.raises(XmkdError, match="name the part"):
        PackedSkeletonDataset(tmp_path)
