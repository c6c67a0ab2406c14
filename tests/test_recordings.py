"""The recordings layout: paths, session.json, flow, video, timestamps, Session.open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xmkd import recordings as rec
from xmkd.errors import FormatError, XmkdError
from xmkd.ntu import SkeletonSequence, write_skeleton

NAME = "S001C002P003R001A004"


def test_paths_follow_the_layout(tmp_path: Path) -> None:
    assert rec.skeleton_path(tmp_path, NAME) == tmp_path / "skeletons" / f"{NAME}.skeleton"
    assert rec.video_path(tmp_path, NAME) == tmp_path / "rgb" / f"{NAME}_rgb.avi"
    assert rec.timestamps_path(tmp_path, NAME) == tmp_path / "timestamps" / f"{NAME}.csv"
    x, y = rec.flow_paths(rec.flow_dir(tmp_path, NAME), 7)
    assert x == tmp_path / "flow" / NAME / "flow_x_00007.jpg"
    assert y == tmp_path / "flow" / NAME / "flow_y_00007.jpg"
    with pytest.raises(ValueError):
        rec.flow_paths(tmp_path, 0)  # pairs are numbered from 1


def test_encode_flow_bound_and_round_trip() -> None:
    flow = np.zeros((2, 4, 2), np.float32)
    flow[0, 0] = (-20.0, 20.0)
    flow[0, 1] = (-35.0, 99.0)  # clipped to the bound
    flow[0, 2] = (0.0, 10.0)
    x, y = rec.encode_flow(flow)
    assert x.dtype == np.uint8 and x.shape == (2, 4)
    assert (x[0, 0], y[0, 0]) == (0, 255)
    assert (x[0, 1], y[0, 1]) == (0, 255)
    assert y[0, 2] == round(255 * 30 / 40)  # 191
    rng = np.random.default_rng(0)
    values = rng.uniform(-20, 20, (16, 16, 2)).astype(np.float32)
    back = rec.decode_flow(*rec.encode_flow(values))
    assert back.shape == values.shape
    assert np.abs(back - values).max() <= 20.0 / 255 + 1e-5  # half a quantisation step
    with pytest.raises(ValueError):
        rec.encode_flow(np.zeros((4, 4, 3)))


def test_flow_jpegs_named_from_one(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:32, 0:48].astype(np.float32)
    flows = [np.stack([xx / 8 - 3 + k, yy / 8 - 2], -1) for k in range(3)]
    directory = tmp_path / "flow" / NAME
    assert rec.write_flow(directory, flows) == 3
    assert sorted(p.name for p in directory.iterdir()) == [
        f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in (1, 2, 3)
    ]
    assert rec.count_flow(directory) == 3
    stored = rec.read_flow(directory)
    assert stored.shape == (3, 32, 48, 2) and stored.dtype == np.uint8
    decoded = rec.read_flow(directory, decode=True)
    assert np.abs(decoded - np.stack(flows)).mean() < 0.2  # JPEG at q95 on smooth fields
    (directory / "flow_y_00002.jpg").unlink()
    with pytest.raises(FormatError, match="flow pair 2"):
        rec.count_flow(directory)


def test_session_json_round_trip_and_atomic(tmp_path: Path) -> None:
    info = rec.new_session_info(
        "azure-kinect",
        devices=[{"camera": 1, "serial": "000123", "calibration": {"fx": 600.0}}],
        settings={"fps": 30},
        classes=["a", "b"],
    )
    info["clips"].append({"name": NAME, "frames": 5, "fps": 30.0})
    info["dropped_frames"] = {NAME: 2}
    rec.write_session_json(tmp_path, info)
    assert rec.read_session_json(tmp_path) == info
    assert [p.name for p in tmp_path.iterdir()] == ["session.json"]  # no temporary file left
    assert info["format"] == "xmkd-session" and info["version"] == 1
    assert {"xmkd", "python", "numpy", "opencv"} <= set(info["versions"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other", "version": 1, "clips": []}', "'format'"),
        ('{"format": "xmkd-session", "version": 99, "clips": []}', "unsupported 'version'"),
        ('{"format": "xmkd-session", "version": 1, "clips": [{"name": "x"}]}', "'frames'"),
    ],
)
def test_session_json_errors_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "session.json").write_text(content)
    with pytest.raises(FormatError, match=message) as err:
        rec.read_session_json(tmp_path)
    assert "session.json" in str(err.value)


def test_invalid_info_is_not_written(tmp_path: Path) -> None:
    info = rec.new_session_info("x")
    rec.write_session_json(tmp_path, info)
    before = (tmp_path / "session.json").read_text()
    info["clips"] = "oops"
    with pytest.raises(FormatError):
        rec.write_session_json(tmp_path, info)
    assert (tmp_path / "session.json").read_text() == before  # nothing already written is lost


def test_video_round_trip_and_probe(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = np.repeat(rng.integers(0, 256, (6, 1, 1, 3), dtype=np.uint8), 32, 1)
    frames = np.repeat(frames, 40, 2)  # flat-colour 32x40 frames: JPEG keeps them closely
    path = tmp_path / "rgb" / f"{NAME}_rgb.avi"
    assert rec.write_video(path, frames, fps=20) == 6
    info = rec.probe_video(path)
    assert (info.frames, info.width, info.height) == (6, 40, 32)
    assert info.fps == pytest.approx(20)
    back = rec.read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).mean() < 3
    with pytest.raises(ValueError, match="expected a uint8 BGR frame"):
        with rec.VideoWriter(tmp_path / "b.avi", 20, 40, 32) as writer:
            writer.write(np.zeros((32, 41, 3), np.uint8))
    with pytest.raises(XmkdError, match="does not exist"):
        rec.read_video(tmp_path / "missing.avi")
    (tmp_path / "junk.avi").write_bytes(b"not a video at all")
    with pytest.raises(FormatError):
        rec.read_video(tmp_path / "junk.avi")


def test_timestamps_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    device = np.array([100, 33433, 66766], np.int64)
    host = np.array([10**18, 10**18 + 33_333_000, 10**18 + 66_666_000], np.int64)
    rec.write_timestamps(path, device, host)
    assert path.read_text().splitlines()[0] == "frame,device_usec,host_nsec"
    d, h = rec.read_timestamps(path)
    assert np.array_equal(d, device) and np.array_equal(h, host)
    assert rec.count_timestamps(path) == 3
    path.write_text("frame,device_usec,host_nsec\n0,1,2\n1,x,3\n")
    with pytest.raises(FormatError, match="line 3"):
        rec.read_timestamps(path)
    path.write_text("frame,device_usec,host_nsec\n0,1,2\n2,2,3\n")
    with pytest.raises(FormatError, match="expected frame 1"):
        rec.read_timestamps(path)


def _make_session(root: Path, frames: int = 5, flow: bool = True) -> None:
    """A one-clip session written through the layout API."""
    rec.make_session_dirs(root)
    rng = np.random.default_rng(2)
    seq = SkeletonSequence.from_arrays(
        np.ones(frames, np.int64),
        np.full(frames, 72057594037931101, np.uint64),
        rng.normal(0, 0.3, (frames, 25, 3)) + [0, 0, 3],
    )
    write_skeleton(rec.skeleton_path(root, NAME), seq)
    rec.write_video(rec.video_path(root, NAME), np.zeros((frames, 16, 16, 3), np.uint8), 30)
    rec.write_timestamps(
        rec.timestamps_path(root, NAME), np.arange(frames) * 33333, np.arange(frames) * 10**7
    )
    if flow:
        rec.write_flow(rec.flow_dir(root, NAME), [np.zeros((16, 16, 2))] * (frames - 1))
    info = rec.new_session_info("test", classes=[f"class {i}" for i in range(5)])
    info["clips"] = [{"name": NAME, "frames": frames, "fps": 30.0}]
    rec.write_session_json(root, info)


def test_session_open_lists_clips(tmp_path: Path) -> None:
    _make_session(tmp_path)
    session = rec.Session.open(tmp_path)
    assert len(session) == 1 and session.class_names[3] == "class 3"
    clip = session.clip(NAME)
    assert clip.frames == 5 and clip.label == 3 and clip.sample.camera == 2
    assert clip.has_video and clip.has_flow
    assert clip.skeleton.is_file() and clip.timestamps.is_file()
    with pytest.raises(XmkdError, match="no clip"):
        session.clip("S001C001P001R001A001")


def test_session_open_rejects_a_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(XmkdError, match="not an xmkd session"):
        rec.Session.open(tmp_path)
    with pytest.raises(XmkdError, match="not a folder"):
        rec.Session.open(tmp_path / "nope")


def _edit_clip_entry(root: Path, **changes) -> None:
    path = root / "session.json"
    info = json.loads(path.read_text())
    info["clips"][0].update(changes)
    path.write_text(json.dumps(info))


def test_session_open_reports_disagreeing_files(tmp_path: Path) -> None:
    _make_session(tmp_path, frames=5)
    # a video one frame short: frame i would no longer be the same instant
    rec.write_video(rec.video_path(tmp_path, NAME), np.zeros((4, 16, 16, 3), np.uint8), 30)
    with pytest.raises(FormatError, match=r"_rgb\.avi.*4 frames.*5") as err:
        rec.Session.open(tmp_path)
    assert "same instant" in str(err.value)
    rec.Session.open(tmp_path, verify=False)  # header checks can be skipped

    _make_session(tmp_path, frames=5)
    rec.write_timestamps(rec.timestamps_path(tmp_path, NAME), [1, 2], [3, 4])
    with pytest.raises(FormatError, match=r"\.csv.*2 rows"):
        rec.Session.open(tmp_path)

    _make_session(tmp_path, frames=5)
    _edit_clip_entry(tmp_path, frames=6)
    with pytest.raises(FormatError, match="has 5 frames but session.json lists 6"):
        rec.Session.open(tmp_path)

    _make_session(tmp_path, frames=5)
    rec.write_flow(rec.flow_dir(tmp_path, NAME), [np.zeros((16, 16, 2))] * 6)
    with pytest.raises(FormatError, match="6 flow pairs, expected 4"):
        rec.Session.open(tmp_path)

    _make_session(tmp_path, frames=5, flow=False)
    rec.skeleton_path(tmp_path, NAME).unlink()
    with pytest.raises(FormatError, match="is missing"):
        rec.Session.open(tmp_path)

    _make_session(tmp_path, frames=5)
    _edit_clip_entry(tmp_path, name="clip-1")
    with pytest.raises(FormatError, match="not an NTU name"):
        rec.Session.open(tmp_path)


def test_atomic_writes_are_durable_file_then_folder(tmp_path: Path, monkeypatch) -> None:
    """A power cut after an atomic write keeps the new content: the temporary file is fsynced
    before the rename and the folder after it (a rename lives in the folder's entries)."""
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    rec.write_session_json(tmp_path, rec.new_session_info("x"))
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[2][1] == str(tmp_path)
    events.clear()
    target = tmp_path / "sub" / "file.bin"
    rec.atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[1][1] == str(target) and events[2][1] == str(target.parent)
    events.clear()
    rec.write_timestamps(tmp_path / "t.csv", [1], [2], fsync=False)  # synth opts out
    assert events == [("replace", str(tmp_path / "t.csv"))]
