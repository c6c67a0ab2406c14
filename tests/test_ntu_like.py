"""xmkd.synth.ntu_like: the NTU-like download the benchmarks ingest (names, pairs, reuse)."""

from __future__ import annotations

import pytest

from xmkd.errors import XmkdError
from xmkd.ntu.splits import protocol_split
from xmkd.recordings import probe_video
from xmkd.synth.ntu_like import ntu_like_jobs, write_ntu_like


def test_jobs_split_evenly_over_the_protocol_parts():
    jobs = ntu_like_jobs(7, classes=3)
    parts = [protocol_split(j.name) for j in jobs]
    assert parts.count("teacher_train") == 4 and parts.count("student_train") == 3
    assert len({j.name for j in jobs}) == 7
    with pytest.raises(XmkdError, match="do not fit"):
        ntu_like_jobs(10_000, classes=1)


def test_writes_whole_pairs_and_reuses_them(tmp_path):
    root = tmp_path / "ntu"
    options = dict(frames=10, classes=2, size=(64, 36), render_size=(32, 18), codec="MJPG")
    tree = write_ntu_like(root, 4, **options)
    names = tree.splits["teacher_train"] + tree.splits["student_train"]
    assert tree.written == 4 and len(names) == 4
    for name in names:
        info = probe_video(tree.rgb / f"{name}_rgb.avi")
        assert (info.width, info.height, info.frames) == (64, 36, 10)
        assert (tree.skeletons / f"{name}.skeleton").is_file()
    assert sorted(p.name for p in tree.rgb.iterdir()) == sorted(f"{n}_rgb.avi" for n in names)
    assert write_ntu_like(root, 4, **options).written == 0
    with pytest.raises(XmkdError, match="other options"):
        write_ntu_like(root, 4, **{**options, "frames": 12})
