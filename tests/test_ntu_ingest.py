"""NTU RGB+D from the raw folders: `prepare-ntu --rgb` -> `teacher train --packed` -> `label
--packed`, on the small NTU-like download of tests/ntu_tree.py (no dataset needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.ntu_tree import FULL_HD, build_ntu_tree
from xmkd.cli import main
from xmkd.ntu import videos as V


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return build_ntu_tree(tmp_path_factory.mktemp("ntu"))


def prepare(tree, out, *extra: str) -> int:
    return main(
        [
            "prepare-ntu",
            "--skeletons",
            str(tree.skeletons),
            "--rgb",
            str(tree.rgb),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def packed(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    assert prepare(tree, out, "--workers", "2", "--flow", "dis", "--flow-preset", "ultrafast") == 0
    return out


def names(out, part):
    return (out / f"{part}_names.txt").read_text().split()


def test_ingest_pairs_videos_with_skeletons(tree, packed):
    manifest = json.loads((packed / "manifest.json").read_text())
    videos = manifest["videos"]
    # the teacher's parts keep exactly the pairs; the test part is the skeletons' as before
    assert names(packed, "teacher_train") == sorted(tree.splits["teacher_train"])
    assert names(packed, "student_train") == sorted(tree.splits["student_train"])
    assert tree.unreadable in names(packed, "train")  # its skeleton is still packed there
    assert len(names(packed, "test")) == len(tree.splits["test"])
    assert videos["parts"] == ["teacher_train", "student_train"]
    assert videos["ingested"] == len(tree.splits["teacher_train"]) + len(
        tree.splits["student_train"]
    )
    assert [u["file"] for u in videos["unreadable"]] == [str(tree.video(tree.unreadable))]
    assert videos["no_video"] == [tree.unreadable]
    assert videos["no_skeleton"] == [tree.no_skeleton]
    assert videos["skipped_missing"] == [tree.official_missing]
    assert videos["frame_differences"] == tree.frame_difference
    assert not (packed / "rgb" / f"{tree.official_missing}_rgb.avi").exists()
    assert not (packed / V.PARTIAL_DIR).exists()


def test_stored_clips_are_tsn_sized_and_aligned_by_index(tree, packed):
    for name in tree.splits["teacher_train"] + tree.splits["student_train"]:
        marker = V.read_marker(packed, name)
        skeleton = tree.skeleton_frames[name]
        video = skeleton + tree.frame_difference.get(name, 0)
        assert (marker["video_frames"], marker["skeleton_frames"]) == (video, skeleton)
        assert marker["frames"] == min(video, skeleton)  # frame i of both is the same instant
        assert marker["flow_pairs"] == marker["frames"] - 1
        index = V.avi_frame_index(packed / "rgb" / f"{name}_rgb.avi")
        assert len(index) == marker["frames"]
        # 1920x1080 -> short side 256, aspect kept; smaller videos are not upscaled
        expected = (456, 256) if name == tree.full_hd else tree.size
        assert (marker["width"], marker["height"]) == expected
    assert FULL_HD == (1920, 1080)


def test_sparse_reader_gives_what_a_full_decode_gives(packed):
    """The teacher decodes only TSN's sampled frames; the input equals teacher_input over the
    whole decoded clip, for the same random draws (rgb, rgbdiff, flow)."""
    from xmkd.data import PackedVideoDataset
    from xmkd.models.tsn import TSNInputSpec, teacher_input

    for modality in ("rgb", "rgbdiff", "flow"):
        data = PackedVideoDataset(packed, "teacher_train", "flow" if modality == "flow" else "rgb")
        spec = TSNInputSpec(modality=modality, num_segments=3, crop_size=48, scale_size=56)
        for index in range(len(data)):
            for train in (True, False):
                rngs = [np.random.default_rng(index) for _ in range(2)]
                sparse = data.teacher_input(index, spec, train=train, rng=rngs[0])
                full = teacher_input(data.load(index), spec, train=train, rng=rngs[1])
                assert torch.equal(sparse, full)


def test_read_frames_decodes_the_chosen_frames_like_opencv(packed, tree):
    from xmkd.recordings import read_video

    path = packed / "rgb" / f"{tree.full_hd}_rgb.avi"
    full = read_video(path)  # FFmpeg's decoder
    picked = V.read_frames(path, [5, 0, 5, len(full) - 1])
    assert picked.shape == (4, 256, 456, 3)
    assert np.array_equal(picked[0], picked[2])
    for got, i in zip(picked, [5, 0, 5, len(full) - 1]):  # libjpeg vs FFmpeg: rounding only
        assert np.abs(got.astype(int) - full[i]).mean() < 3
    with pytest.raises(V.FormatError, match="frame 99 was asked for"):
        V.read_frames(path, [99])


def test_teacher_and_labels_on_packed_ntu(tree, packed, tmp_path, capsys):
    from xmkd.checkpoint import load_checkpoint
    from xmkd.ntu.pack import PackedNTU
    from xmkd.train.label import load_labels

    run = tmp_path / "teacher"
    argv = ["teacher", "train", "--packed", str(packed), "--out", str(run), "--quiet"]
    assert main([*argv, "--preset", "synthetic", "--epochs", "1", "--batch-size", "4"]) == 0
    ckpt = load_checkpoint(run / "teacher.pt", kind="teacher")
    assert len(ckpt["class_names"]) == 60  # NTU-60's classes, from the packed manifest
    assert ckpt["extra"]["student_train_accuracy"] is not None
    labels = tmp_path / "labels.pt"
    assert main(["label", "--teacher", str(run / "teacher.pt"), "--packed", str(packed),
                 "--out", str(labels), "--quiet"]) == 0  # fmt: skip
    cache = load_labels(labels)
    # the cache distill --packed reads: a row for every Student-Train sample of the folder
    student = PackedNTU(packed, "student_train")
    assert sorted(cache.names) == sorted(student.names)
    assert cache.lookup(student.names).shape == (len(student), 60)
    assert cache.accuracy() is not None  # NTU names carry their action
    assert "teacher accuracy on these clips" in capsys.readouterr().out


def test_teacher_starts_from_imagenet_weights_on_flow(packed, tmp_path):
    """The paper's recipe on the stored flow, from a torchvision ResNet-18 weights file."""
    from tests.test_models import imagenet_like_file
    from xmkd.checkpoint import load_checkpoint

    sd, weights = imagenet_like_file(tmp_path)
    run = tmp_path / "flow-teacher"
    argv = ["teacher", "train", "--packed", str(packed), "--out", str(run), "--quiet"]
    argv += ["--preset", "paper", "--modality", "flow", "--epochs", "1", "--batch-size", "2"]
    argv += ["--crop-size", "32", "--lr", "1e-6", "--pretrained", str(weights)]
    assert main(argv) == 0
    state = load_checkpoint(run / "teacher.pt", kind="teacher")["models"][0]["state_dict"]
    key = next(k for k in state if k.endswith("layer4.1.conv2.weight"))
    # one epoch at lr 1e-6 leaves the ImageNet weights in place (a random init would not be)
    assert torch.allclose(state[key], sd["layer4.1.conv2.weight"], atol=1e-4)


def test_resume_redoes_only_unfinished_samples(tree, tmp_path, monkeypatch):
    out = tmp_path / "packed"
    calls = []
    real = V._ingest_one

    def killed_on_third(job, out_dir, options):
        calls.append(job.name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is stopped in the middle of a sample
        return real(job, out_dir, options)

    monkeypatch.setattr(V, "_ingest_one", killed_on_third)
    assert prepare(tree, out, "--workers", "1") == 130
    done = sorted(p.stem for p in (out / V.MARKER_DIR).glob("*.json"))
    assert done == sorted(calls[:2])
    assert not (out / "manifest.json").exists()  # an interrupted folder is never complete
    # a sample killed after its video was moved into place but before its marker: not done
    first, half = calls[0], calls[1]
    (out / V.MARKER_DIR / f"{half}.json").unlink()
    video = out / "rgb" / f"{half}_rgb.avi"
    video.write_bytes(video.read_bytes()[:1000])
    (out / V.PARTIAL_DIR / "junk").mkdir(parents=True)

    calls.clear()
    monkeypatch.setattr(V, "_ingest_one", lambda *a: (calls.append(a[0].name), real(*a))[1])
    assert prepare(tree, out, "--workers", "1") == 0
    assert half in calls and first not in calls  # only unfinished samples are decoded again
    assert len(V.avi_frame_index(video)) == V.read_marker(out, half)["frames"]
    assert json.loads((out / "manifest.json").read_text())["videos"]["ingested"] == 10


def test_stops_cleanly_before_the_disk_is_full(tree, tmp_path, monkeypatch, capsys):
    out = tmp_path / "packed"
    free = iter([10**12, 10**12, 10**12])
    monkeypatch.setattr(V, "_free_bytes", lambda path: next(free, 10**8))
    assert prepare(tree, out, "--workers", "1", "--min-free-gb", "0.5") == 2
    err = capsys.readouterr().err.strip()
    assert "stopped before the disk filled" in err and "run the same command again" in err
    assert len(err.splitlines()) == 1
    kept = sorted(p.stem for p in (out / V.MARKER_DIR).glob("*.json"))
    assert len(kept) == 2  # the first check is the estimate; then one check per sample
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(V, "_free_bytes", lambda path: 10**12)
    assert prepare(tree, out, "--workers", "1") == 0
    assert "2 done by an earlier run" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--benchmark", "xview60"], "cross-subject benchmarks"),
        (["--flow", "tvl1"], "opencv-contrib"),
    ],
)
def test_bad_video_options_are_one_sentence(tree, tmp_path, capsys, monkeypatch, extra, message):
    import cv2

    # TV-L1 is in opencv-contrib only: the message for an OpenCV without it, also where it is
    monkeypatch.delattr(cv2, "optflow", raising=False)
    assert prepare(tree, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / V.MARKER_DIR).exists()


def test_teacher_on_a_folder_without_videos_says_how_to_add_them(tree, tmp_path, capsys):
    out = tmp_path / "skeletons-only"
    assert main(["prepare-ntu", "--skeletons", str(tree.skeletons), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert not json.loads((out / "manifest.json").read_text()).get("videos")
    assert (
        main(["teacher", "train", "--packed", str(out), "--out", str(tmp_path / "t"), "--quiet"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "holds no videos" in err and "--rgb" in err and len(err.splitlines()) == 1


def test_packed_videos_walk_each_avi_chunk_table_once(packed, monkeypatch):
    """The sampled frames of a clip are read through its chunk table, walked once per process
    (not on every item: ~1 ms of the ~10 ms a TSN snippet takes)."""
    from xmkd.data import PackedVideoDataset
    from xmkd.models.tsn import TSNInputSpec

    walks = []
    walk = V.avi_frame_index
    monkeypatch.setattr(V, "avi_frame_index", lambda path: walks.append(path) or walk(path))
    data = PackedVideoDataset(packed, "teacher_train", "rgb")
    spec = TSNInputSpec(modality="rgbdiff", crop_size=48, scale_size=56)
    first = [data.teacher_input(0, spec, train=True, rng=np.random.default_rng(s)) for s in (1, 2)]
    assert walks == [data.videos[0]]
    assert not torch.equal(*first)  # two draws, two different snippets from the one table
