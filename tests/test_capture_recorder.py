"""The recorder for real: synthetic recordings open in the session reader, the NTU reader and the
dataset reader; a recording process killed with SIGKILL is recovered losing at most ~1 s; the
disk guard stops cleanly; dropped frames are counted from device timestamps; optical flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from capture.flow import FlowComputer, FlowConfig, session_flow, tsn_size, write_clip_flow
from capture.recorder import RecordConfig, Recorder
from capture.recover import recover_session
from capture.source import Body, Frame, Pacer, Source, open_source
from xmkd.errors import MissingExtraError, XmkdError
from xmkd.ntu import read_skeleton
from xmkd.recordings import Session, read_flow, read_session_json, read_timestamps, read_video

REPO = Path(__file__).resolve().parents[1]


class StripeSource(Source):
    """A small deterministic source: a moving bar, one body in the frames listed in ``bodies``,
    and device-timestamp gaps (frames lost before the given indices)."""

    description = "stripes"

    def __init__(self, n=60, camera=1, gaps=None, bodies=None, fps=30.0, realtime=False):
        super().__init__(camera)
        self.n, self.gaps, self.fps, self.realtime = n, gaps or {}, fps, realtime
        self.body_frames = set(range(n)) if bodies is None else set(bodies)

    def _open(self) -> None:
        pass

    def _frames(self) -> Iterator[Frame]:
        pacer = Pacer(self.fps, self.realtime)
        tick = 0
        for i in range(self.n):
            tick += self.gaps.get(i, 0)
            img = np.full((120, 160, 3), 40, np.uint8)
            img[:, (i * 3) % 140 : (i * 3) % 140 + 20] = 220
            joints = np.tile([0.0, 0.0, 3.0], (25, 1)) + i * 0.001
            bodies = [Body(11, joints)] if i in self.body_frames else []
            yield Frame(i, img, None, bodies, int(tick * 1e6 / self.fps), time.perf_counter_ns(),
                        self.camera)  # fmt: skip
            tick += 1
            pacer.wait()


def _record(tmp_path, sources, **cfg) -> tuple[Recorder, dict]:
    config = RecordConfig(min_free_mb=1, **cfg)
    recorder = Recorder(sources, tmp_path / "session", config, log=lambda m: None)
    recorder.start()
    return recorder, recorder.wait()


def test_synthetic_recording_opens_in_every_reader(tmp_path):
    from xmkd.data.datasets import SkeletonDataset, VideoDataset

    src = open_source("synthetic:tiny?realtime=0&clips=2&width=320&height=180&fps=30")
    recorder, stats = _record(tmp_path, [src], setup=3, performer=7, clip_seconds=1.0)
    session = Session.open(tmp_path / "session")  # verifies every clip's files agree
    names = [c.name for c in session.clips]
    assert names[0] == "S003C001P007R001A000" and len(names) == stats["clips"] >= 2
    assert len(set(names)) == len(names) and all(n.endswith("A000") for n in names)
    clip = session.clips[0]
    assert clip.frames == 30 and clip.label == -1
    seq = read_skeleton(clip.skeleton)
    video = read_video(clip.video)
    device, host = read_timestamps(clip.timestamps)
    assert seq.num_frames == len(video) == len(device) == 30
    assert video.shape[1:] == (180, 320, 3)
    assert np.all(np.diff(device) == 33333) or np.all(np.abs(np.diff(device) - 33333) <= 1)
    flow = read_flow(clip.flow)
    assert flow.shape == (29, 256, 456, 2)  # TSN resolution, pair i = frame i -> i + 1
    info = read_session_json(tmp_path / "session")
    assert info["devices"][0]["camera"] == 1 and info["dropped_frames"]["total"] == 0
    assert info["source"] == "synthetic" and info["settings"]["fps"] == 30.0
    assert not [p for p in (tmp_path / "session" / "partial").iterdir() if p.is_dir()]
    skeletons = SkeletonDataset(tmp_path / "session", max_frames=30)
    x = skeletons[0][0]
    assert len(skeletons) == len(names) and tuple(np.shape(x)) == (3, 30, 25, 2)
    videos = VideoDataset(tmp_path / "session", modality="rgb+flow")
    assert len(videos) == len(names)
    x, label, _ = videos[0]  # the remuxed MJPEG AVI and the flow JPEGs decode in the reader
    assert tuple(x["rgb"].shape) == (30, 180, 320, 3) and tuple(x["flow"].shape)[0] == 29
    assert label == -1


def test_dropped_frames_are_counted_from_device_timestamps(tmp_path):
    sources = [StripeSource(90, camera=1, gaps={10: 2, 50: 1}), StripeSource(90, camera=2)]
    recorder, stats = _record(tmp_path, sources, clip_seconds=1.0, flow=False)
    assert stats["dropped_frames"] == {1: 3, 2: 0} and stats["queue_overflow"] == {1: 0, 2: 0}
    info = read_session_json(tmp_path / "session")
    clips = {c["name"]: c for c in info["clips"]}
    assert clips["S001C001P001R001A000"]["dropped_frames"] == 2
    assert clips["S001C001P001R002A000"]["dropped_frames"] == 1
    assert clips["S001C002P001R001A000"]["dropped_frames"] == 0
    assert info["dropped_frames"]["device"] == {"camera1": 3, "camera2": 0}
    assert info["dropped_frames"]["recorder_queue_overflow"] == {"camera1": 0, "camera2": 0}
    assert len(clips) == 6  # 3 one-second clips per camera, both cameras in one session


def test_overlapping_windows_share_frames(tmp_path):
    recorder, stats = _record(tmp_path, [StripeSource(60)], clip_seconds=1.0,
                              stride_seconds=0.5, flow=False)  # fmt: skip
    clips = Session.open(tmp_path / "session").clips
    assert [c.frames for c in clips] == [30, 30, 30, 15]
    second = read_timestamps(clips[1].timestamps)[0]
    first = read_timestamps(clips[0].timestamps)[0]
    assert np.array_equal(second[:15], first[15:])  # the same instants, in both clips
    assert recorder.stop() == stats  # stopping again changes nothing


def test_presence_mode_cuts_a_clip_per_appearance(tmp_path):
    bodies = list(range(5, 45)) + list(range(60, 64)) + list(range(80, 120))
    src = StripeSource(130, bodies=bodies)
    _record(tmp_path, [src], mode="presence", presence_min_seconds=0.5,
            presence_gap_seconds=0.2, flow=False)  # fmt: skip
    clips = Session.open(tmp_path / "session").clips
    # two appearances kept (40 frames + the 6-frame gap tail); the 4-frame passer-by dropped
    assert [c.frames for c in clips] == [46, 46]
    first = read_skeleton(clips[0].skeleton)
    assert first.body_counts[:40].min() == 1 and first.body_counts[40:].max() == 0


def test_takes_mode_records_between_start_and_stop(tmp_path):
    src = StripeSource(200, realtime=True, fps=100)
    config = RecordConfig(mode="takes", flow=False, min_free_mb=1)
    recorder = Recorder([src], tmp_path / "s", config, log=lambda m: None)
    recorder.start()
    time.sleep(0.3)
    recorder.start_take()
    time.sleep(0.5)
    recorder.stop_take()
    stats = recorder.wait()
    clips = Session.open(tmp_path / "s").clips
    assert stats["clips"] == 1 and len(clips) == 1 and 25 <= clips[0].frames <= 75


def test_disk_guard_stops_cleanly_and_keeps_earlier_clips(tmp_path):
    capacity = {"free": 10**12}

    def free_bytes(path: Path) -> int:  # a disk that fills with what the session writes
        used = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return capacity["free"] - used

    src = StripeSource(600, realtime=True, fps=200)
    config = RecordConfig(clip_seconds=0.15, chunk_seconds=0.15, flow=False, min_free_mb=1)
    recorder = Recorder([src], tmp_path / "s", config, free_bytes=free_bytes, log=lambda m: None)
    recorder.start()
    partial = tmp_path / "s" / "partial"
    while not list(partial.glob("*/chunk_*.npz")):
        time.sleep(0.01)
    chunk = next(iter(partial.glob("*/chunk_*.npz"))).stat().st_size
    # room for a few more chunks (each needs its own size twice: chunk + video copy)
    used = capacity["free"] - free_bytes(tmp_path / "s")
    capacity["free"] = used + 10**6 + 8 * chunk
    stats = recorder.wait()
    assert "only" in stats["stop_reason"] and "MB free" in stats["stop_reason"]
    session = Session.open(tmp_path / "s")  # earlier takes intact and valid
    assert 2 <= len(session.clips) < 20 and sum(c.frames for c in session.clips) < 600
    assert all(read_skeleton(c.skeleton).num_frames == c.frames for c in session.clips)
    assert read_session_json(tmp_path / "s")["settings"]["stopped"] == stats["stop_reason"]
    assert free_bytes(tmp_path / "s") > 10**6 - 2 * chunk  # the margin held


def _proc_stat(pid: int) -> list[str] | None:
    """The fields after the command name in /proc/PID/stat (state, ppid, ...); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def child_processes(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux; [] where there is no /proc)."""
    children = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _proc_stat(int(entry.name))
        if fields and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def process_running(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def test_kill_9_loses_at_most_the_last_second(tmp_path):
    out = tmp_path / "rec"
    cmd = [sys.executable, "-m", "xmkd", "record", "--source",
           "synthetic:tiny?fps=30&width=320&height=180", "--out", str(out), "--session", "s",
           "--setup", "1", "--performer", "2", "--clip-seconds", "2.0",
           "--min-free-mb", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    partial = out / "s" / "partial"
    deadline = time.monotonic() + 60
    # wait until the first chunk is on disk (the process is really recording), then 2.6 s more
    while not list(partial.glob("*/chunk_*.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.6)
    helpers = child_processes(proc.pid)  # the live-flow worker
    killed_at = time.perf_counter_ns()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # the recorder's helper processes do not outlive it (they used to wait forever)
    deadline = time.monotonic() + 15
    while [p for p in helpers if process_running(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in helpers if process_running(p)], "a helper outlived the recorder"
    assert [p for p in partial.iterdir() if p.is_dir()], "nothing was left to recover"

    entries = recover_session(out / "s", log=lambda m: None).clips
    session = Session.open(out / "s")
    assert entries and all(c.meta.get("recovered") for c in session.clips if c.name in
                           {e["name"] for e in entries})  # fmt: skip
    total = sum(c.frames for c in session.clips)
    last_host = max(int(read_timestamps(c.timestamps)[1][-1]) for c in session.clips)
    lost_seconds = (killed_at - last_host) / 1e9
    print(f"kill -9: {total} frames kept, the last {lost_seconds:.2f} s lost")
    assert lost_seconds <= 1.0, f"lost {lost_seconds:.2f} s of frames"
    assert total >= 60  # more than 2 s at 30 fps survived
    for clip in session.clips:  # every recovered clip is complete and self-consistent
        seq = read_skeleton(clip.skeleton)
        assert seq.num_frames == clip.frames == len(read_video(clip.video))
        device, _ = read_timestamps(clip.timestamps)
        assert np.all(np.diff(device) > 0)
        assert read_flow(clip.flow).shape[0] == clip.frames - 1
    assert not (partial / "recording.pid").exists()
    assert recover_session(out / "s", log=lambda m: None).clips == []  # idempotent


def test_recover_refuses_a_session_that_is_still_recording(tmp_path):
    src = StripeSource(400, realtime=True, fps=100)
    recorder = Recorder([src], tmp_path / "s", RecordConfig(flow=False, min_free_mb=1),
                        log=lambda m: None)  # fmt: skip
    recorder.start()
    try:
        # the lock names this very process, so pretend to be another one
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "getpid", lambda: 1)
            with pytest.raises(XmkdError, match="still being recorded"):
                recover_session(tmp_path / "s", log=lambda m: None)
    finally:
        recorder.stop()


# ---- flow ----------------------------------------------------------------------------------
def test_dis_flow_measures_a_known_shift_at_tsn_resolution():
    assert tsn_size(1280, 720) == (456, 256) and tsn_size(340, 256) == (340, 256)
    rng = np.random.default_rng(0)
    base = (rng.random((256, 340)) * 255).astype(np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (0, 0), 2)
    frames = [np.dstack([np.roll(base, 2 * i, axis=1)] * 3) for i in range(3)]
    for preset in ("ultrafast", "fast", "medium"):
        computer = FlowComputer(FlowConfig(preset=preset))
        assert computer.push(frames[0]) is None
        flow = computer.push(frames[1])
        inner = flow[32:-32, 32:-32]
        assert abs(np.median(inner[..., 0]) - 2.0) < 0.3 and abs(np.median(inner[..., 1])) < 0.3


def test_flow_files_follow_the_layout(tmp_path):
    frames = [np.full((180, 320, 3), 50 + 10 * i, np.uint8) for i in range(4)]
    pairs = write_clip_flow(frames, tmp_path / "f", FlowConfig(preset="ultrafast"))
    assert pairs == 3
    assert sorted(os.listdir(tmp_path / "f"))[:2] == ["flow_x_00001.jpg", "flow_x_00002.jpg"]
    stored = read_flow(tmp_path / "f")
    assert stored.shape == (3, 256, 456, 2) and abs(int(np.median(stored)) - 128) <= 1


def test_tvl1_without_contrib_names_the_package(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "optflow", raising=False)  # as without opencv-contrib
    with pytest.raises(MissingExtraError, match="opencv-contrib"):
        FlowComputer(FlowConfig(method="tvl1"))


def test_offline_flow_for_a_session_recorded_without_it(tmp_path):
    _record(tmp_path, [StripeSource(30)], clip_seconds=1.0, flow=False)
    session_dir = tmp_path / "session"
    assert not Session.open(session_dir).clips[0].has_flow
    done = session_flow(session_dir, FlowConfig(preset="ultrafast"), log=lambda m: None)
    assert done == {"S001C001P001R001A000": 29}
    clip = Session.open(session_dir).clips[0]  # verify: 29 pairs for 30 frames
    assert clip.has_flow
    # the stored flow is the flow of the clip's own video (up to JPEG quantisation)
    from capture.flow import iter_flow

    stored = read_flow(clip.flow, decode=True)
    expected = np.stack(list(iter_flow(read_video(clip.video), FlowConfig(preset="ultrafast"))))
    assert stored.shape == expected.shape
    assert np.mean(np.abs(stored - np.clip(expected, -20, 20))) < 0.2
    assert session_flow(session_dir, FlowConfig(preset="ultrafast"), log=lambda m: None) == {}


@pytest.fixture()
def small_filesystem(tmp_path):
    """A real 16 MB tmpfs (needs root, as in the project's CI container)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the fake-disk guard test still ran")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


class NoiseSource(StripeSource):
    """Incompressible frames (about 60 kB per JPEG) to fill a disk quickly."""

    def _frames(self) -> Iterator[Frame]:
        rng = np.random.default_rng(0)
        for frame in super()._frames():
            frame.color = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            yield frame


def test_disk_guard_on_a_really_small_filesystem(small_filesystem):
    config = RecordConfig(clip_seconds=1.0, flow=False, min_free_mb=6)
    recorder = Recorder([NoiseSource(3000)], small_filesystem / "s", config, log=lambda m: None)
    recorder.start()
    stats = recorder.wait()
    assert stats["stop_reason"] and "MB free" in stats["stop_reason"]
    session = Session.open(small_filesystem / "s")
    assert len(session.clips) >= 1
    for clip in session.clips:
        assert len(read_video(clip.video)) == read_skeleton(clip.skeleton).num_frames == clip.frames
    import shutil

    assert shutil.disk_usage(small_filesystem).free > 1e6  # stopped before the disk was full


def test_cli_records_the_real_mkv(tmp_path, kinect_dir):
    from xmkd.cli import main

    mkv = kinect_dir / "azure-kinect-720p-nfov-1capture.mkv"
    code = main(["record", "--source", f"mkv:{mkv}", "--out", str(tmp_path), "--session", "m",
                 "--setup", "4", "--performer", "9", "--camera", "2",
                 "--min-free-mb", "1"])  # fmt: skip
    assert code == 0
    session = Session.open(tmp_path / "m")
    assert [c.name for c in session.clips] == ["S004C002P009R001A000"]
    assert session.info["devices"][0]["serial"] == "001514394512"
    assert session.info["devices"][0]["calibration"]["CalibrationInformation"]["Cameras"]
    video = read_video(session.clips[0].video)
    assert video.shape == (1, 720, 1280, 3)
    assert read_skeleton(session.clips[0].skeleton).body_counts.tolist() == [0]  # no SDK here


# ---- recovery: never delete what could not be read -----------------------------------------
CLIP = "S001C001P001R001A000"


def make_partial_session(root: Path, chunks: int = 4, per_chunk: int = 15, fps: float = 30.0,
                         name: str = CLIP, flow: bool = False) -> Path:  # fmt: skip
    """A session whose recorder was killed: ``partial/<name>/`` with ``chunks`` complete chunks
    (moving-bar frames with one body, device timestamps at ``fps``) and no finished clip."""
    import cv2

    from capture.recorder import PartialClip
    from xmkd.recordings import make_session_dirs, new_session_info, write_session_json

    make_session_dirs(root)
    settings = {"fps": fps, "flow": flow}
    write_session_json(root, new_session_info("stripes", [{"camera": 1}], settings))
    clip = PartialClip(root, name, fps, 1, {"flow": flow})
    frames = StripeSource(chunks * per_chunk, fps=fps)
    for i, frame in enumerate(frames):
        clip.add(cv2.imencode(".jpg", frame.color)[1].tobytes(), frame)
        if (i + 1) % per_chunk == 0:
            clip.flush()
    return root


def chunk_path(session: Path, number: int, name: str = CLIP) -> Path:
    return session / "partial" / name / f"chunk_{number:06d}.npz"


def test_recover_keeps_every_readable_chunk_after_a_damaged_one(tmp_path):
    session = make_partial_session(tmp_path / "s", chunks=14)
    damaged = chunk_path(session, 3)
    original = damaged.read_bytes()
    garbled = bytearray(original)
    garbled[len(garbled) // 2 : len(garbled) // 2 + 64] = b"\xff" * 64  # CRC no longer matches
    damaged.write_bytes(bytes(garbled))
    report = recover_session(session, log=lambda m: None)
    assert [c["frames"] for c in report.clips] == [13 * 15]  # was 30: cut at the damage
    clip = Session.open(session).clips[0]
    device, _ = read_timestamps(clip.timestamps)
    assert clip.frames == 195 and np.all(np.diff(device) > 0)
    assert clip.meta["dropped_frames"] == 15  # the gap the damaged chunk left is counted
    aside = session / "damaged" / CLIP / "chunk_000003.npz"
    assert aside.read_bytes() == bytes(garbled)  # moved aside, byte for byte, not deleted
    assert len(report.set_aside) == 1 and "chunk_000003.npz" in report.set_aside[0]
    assert any("chunk_000003.npz" in w for w in clip.meta["warnings"])
    assert not (session / "partial" / CLIP).exists()


def test_recover_cli_handles_garbage_meta_and_a_torn_zip_in_one_sentence_each(tmp_path, capsys):
    from xmkd.cli import main

    session = make_partial_session(tmp_path / "s", chunks=4)
    (session / "partial" / CLIP / "meta.json").write_bytes(b"\x00{garbage")
    torn = chunk_path(session, 2)
    torn.write_bytes(torn.read_bytes()[:-100])  # a zip without its central directory
    assert main(["recover", str(session)]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "1 clip(s) recovered" in out.out and "2 unreadable file(s)" in out.out
    clip = Session.open(session).clips[0]
    assert clip.frames == 45 and clip.fps == pytest.approx(30.0)  # rate from the timestamps
    assert (session / "damaged" / CLIP / "meta.json").read_bytes() == b"\x00{garbage"
    assert (session / "damaged" / CLIP / "chunk_000002.npz").is_file()


def test_an_interrupted_recovery_leaves_the_partial_clip_as_it_was(tmp_path, monkeypatch):
    import errno

    import capture.recorder as recorder_module

    session = make_partial_session(tmp_path / "s", chunks=3)
    folder = session / "partial" / CLIP
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recorder_module, "write_mjpeg_avi", disk_full)
    report = recover_session(session, log=lambda m: None)
    assert report.clips == [] and "No space left" in report.left[0]
    # meta.json is only read (it was rewritten in place, a torn file after a power cut)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    assert [c["frames"] for c in recover_session(session, log=lambda m: None).clips] == [45]


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_a_finished_clip_is_durable_before_its_chunks_are_deleted(tmp_path, monkeypatch):
    """The order of a power-cut-safe finish, observed on the real calls: each file fsynced
    under a temporary name, renamed, its folder fsynced; then session.json; then the chunks go."""
    import shutil

    from capture.recorder import finalize_partial

    if not Path("/proc/self/fd").is_dir():
        pytest.fail("this check reads /proc/self/fd (Linux)")
    session = make_partial_session(tmp_path / "s", chunks=2)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rmtree = os.fsync, os.replace, shutil.rmtree

    def fsync(fd):
        events.append(("fsync", _fd_path(fd)))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("replace", f"{a}>{b}"))
        return real_replace(a, b)

    def rmtree(p, *args, **kwargs):
        events.append(("rmtree", str(p)))
        return real_rmtree(p, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    entry = finalize_partial(session / "partial" / CLIP, session, log=lambda m: None)
    assert entry is not None and entry["frames"] == 30
    index = {e: i for i, e in reversed(list(enumerate(events)))}  # first occurrence
    gone = next(i for i, (kind, p) in enumerate(events) if kind == "rmtree" and p.endswith(CLIP))
    listed = next(i for i, (kind, p) in enumerate(events)
                  if kind == "replace" and p.endswith("session.json"))  # fmt: skip
    for final in (session / "rgb" / f"{CLIP}_rgb.avi", session / "skeletons" / f"{CLIP}.skeleton",
                  session / "timestamps" / f"{CLIP}.csv", session / "session.json"):  # fmt: skip
        renamed = next(i for i, (kind, p) in enumerate(events)
                       if kind == "replace" and p.endswith(f">{final}"))  # fmt: skip
        tmp = events[renamed][1].split(">")[0]
        synced = index.get(("fsync", tmp))
        assert synced is not None and synced < renamed, f"{final.name}: not fsynced before rename"
        folder = [i for i, e in enumerate(events) if e == ("fsync", str(final.parent))]
        assert any(renamed < i < gone for i in folder), f"{final.parent.name}/ not fsynced"
        assert renamed <= listed < gone


# ---- start / stop ----------------------------------------------------------------------------
class FailingSource(StripeSource):
    def _open(self) -> None:
        raise XmkdError("camera 2 is unplugged")


def test_a_failed_start_closes_the_sources_it_opened(tmp_path, monkeypatch):
    import cv2

    good = StripeSource(10, camera=1)
    recorder = Recorder([good, FailingSource(10, camera=2)], tmp_path / "s",
                        RecordConfig(flow=False, min_free_mb=1), log=lambda m: None)  # fmt: skip
    with pytest.raises(XmkdError, match="unplugged"):
        recorder.start()
    assert not good.is_open
    # the flow worker failing (TV-L1 without opencv-contrib) also releases the devices
    monkeypatch.delattr(cv2, "optflow", raising=False)
    good = StripeSource(10, camera=1)
    config = RecordConfig(flow_config=FlowConfig(method="tvl1"), min_free_mb=1)
    with pytest.raises(MissingExtraError):
        Recorder([good], tmp_path / "t", config, log=lambda m: None).start()
    assert not good.is_open and not (tmp_path / "t" / "partial" / "recording.pid").exists()


class StuckSource(StripeSource):
    """Yields a few frames, then never yields again (like a real-time source at a frame rate
    the recorder cannot follow, which skips every frame it is late for)."""

    release = False

    def _frames(self) -> Iterator[Frame]:
        frames = super()._frames()
        for _ in range(5):
            yield next(frames)
        while not self.release:
            time.sleep(0.01)


def test_max_seconds_stops_a_source_that_never_yields(tmp_path, monkeypatch):
    import threading

    import capture.recorder as recorder_module

    monkeypatch.setattr(recorder_module, "STOP_GRACE_SECONDS", 1.0, raising=False)
    source = StuckSource(100)
    recorder = Recorder([source], tmp_path / "s",
                        RecordConfig(max_seconds=0.5, flow=False, min_free_mb=1),
                        log=lambda m: None)  # fmt: skip
    recorder.start()
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(recorder.wait()), daemon=True)
    waiter.start()
    waiter.join(60)  # a healthy run takes about 1.5 s
    source.release = True
    assert not waiter.is_alive(), "the recording never stopped"
    assert result["outcome"] == "done"
    assert [c.frames for c in Session.open(tmp_path / "s").clips] == [5]


def test_max_seconds_counts_stream_time_for_a_fast_source(tmp_path):
    # 1000 fps, not paced: far faster than real time; half a second of stream is 500 frames.
    # The wall clock also stops a recording at 0.5 s, so on a loaded machine it may end first
    # with fewer frames; never with more (the old code recorded the whole 5 s stream).
    start = time.monotonic()
    recorder, stats = _record(tmp_path, [StripeSource(5000, fps=1000.0)], max_seconds=0.5,
                              clip_seconds=100.0, flow=False)  # fmt: skip
    frames = stats["frames"][1]
    assert 0 < frames + stats["queue_overflow"][1] <= 500
    if time.monotonic() - start < 0.5:  # the wall clock cannot have stopped it
        # a source that is not live waits for the writer: nothing overflows
        assert frames == 500 and stats["queue_overflow"][1] == 0
    assert [c.frames for c in Session.open(tmp_path / "session").clips] == [frames]


@pytest.mark.parametrize("realtime", [False, True])
def test_a_file_waits_for_a_slow_writer_and_a_live_source_never_does(
    tmp_path, monkeypatch, realtime
):
    """A file read faster than the writer encodes (a video whose estimator is quick) loses no
    frame: its capture waits for room. A live source (here paced at 1000 fps) is never held up:
    what the full queue cannot take is counted as overflow, and every frame is one or the
    other."""
    import cv2

    encode = cv2.imencode

    def slow_encode(*args, **kwargs):
        time.sleep(0.004)  # a writer at ~250 frames/s, slower than either source
        return encode(*args, **kwargs)

    monkeypatch.setattr(cv2, "imencode", slow_encode)
    source = StripeSource(120, fps=1000.0, realtime=realtime)
    _, stats = _record(tmp_path, [source], clip_seconds=100.0, flow=False, queue_frames=4)
    frames, overflow = stats["frames"][1], stats["queue_overflow"][1]
    if realtime:
        assert overflow > 0 and frames + overflow == 120
    else:
        assert (frames, overflow) == (120, 0)
    assert [c.frames for c in Session.open(tmp_path / "session").clips] == [frames]


def _disk_usage_of(free: int):
    import shutil

    real = shutil.disk_usage

    def usage(path):
        total, used, _ = real(path)
        return type(real(path))(total, used, free)

    return usage


SYNTH = "synthetic:tiny?fps=30&realtime=0&clips=2&width=160&height=120"


def record_cli(tmp_path, *extra: str) -> list[str]:
    return ["record", "--source", SYNTH, "--out", str(tmp_path), "--session", "s", "--setup",
            "1", "--performer", "1", "--no-flow", "--clip-seconds", "0.5", *extra]  # fmt: skip


def test_a_full_disk_exits_non_zero_and_says_so_once(tmp_path, monkeypatch, capsys):
    import shutil

    from xmkd.cli import main

    monkeypatch.setattr(shutil, "disk_usage", _disk_usage_of(50 * 10**6))  # 50 MB free
    assert main(record_cli(tmp_path, "--min-free-mb", "100")) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("MB free on the disk") == 1, text


def test_enospc_while_writing_exits_non_zero_and_says_so_once(tmp_path, monkeypatch, capsys):
    import errno

    from capture.recorder import PartialClip
    from xmkd.cli import main

    real_flush, calls = PartialClip.flush, []

    def flush(self):  # the third chunk finds the disk full
        calls.append(1)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_flush(self)

    monkeypatch.setattr(PartialClip, "flush", flush)
    assert main(record_cli(tmp_path, "--min-free-mb", "1")) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("stopped recording: writing camera 1 failed") == 1, text
    assert "Traceback" not in text
    assert len(Session.open(tmp_path / "s").clips) >= 1  # the clips before it are kept


# ---- signals and the flow worker's lifecycle ---------------------------------------------------
def _wait_gone(pids: list[int], seconds: float = 60.0) -> list[int]:
    """Poll until none of ``pids`` runs (generous: a loaded 2-core machine); the survivors."""
    deadline = time.monotonic() + seconds
    while [p for p in pids if process_running(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if process_running(p)]


def _start_recording(out: Path, log: Path, **popen) -> subprocess.Popen:
    """``xmkd record`` with live flow, once its first chunk is on disk; output to ``log`` (a
    file: a helper that outlived the recorder would hold a pipe open)."""
    cmd = [sys.executable, "-m", "xmkd", "record", "--source",
           "synthetic:tiny?fps=30&width=320&height=180", "--out", str(out), "--session", "s",
           "--setup", "1", "--performer", "2", "--clip-seconds", "2.0",
           "--min-free-mb", "1"]  # fmt: skip
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, **popen)
    deadline = time.monotonic() + 120
    while not list((out / "s" / "partial").glob("*/chunk_*.npz")):
        assert proc.poll() is None and time.monotonic() < deadline, "the recording did not start"
        time.sleep(0.05)
    time.sleep(0.5)
    return proc


@pytest.mark.parametrize(
    ("how", "code"), [("SIGTERM", 143), ("Ctrl+C", 130)], ids=["sigterm", "ctrl-c"]
)
def test_a_signal_stops_the_recording_gracefully(tmp_path, how, code):
    out, log = tmp_path / "rec", tmp_path / "record.log"
    proc = _start_recording(out, log, start_new_session=True)
    helpers = child_processes(proc.pid)  # the flow worker and multiprocessing's tracker
    assert helpers
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:  # a terminal sends Ctrl+C's SIGINT to the whole process group, the worker too
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the recorder did not exit after {how}")
    output = log.read_text()
    assert proc.returncode == code, output
    assert "clip(s) in" in output and "Traceback" not in output, output
    assert not _wait_gone(helpers), f"a helper outlived the recorder after {how}"
    session = Session.open(out / "s")
    assert session.clips and all(c.has_flow for c in session.clips)
    assert not [p for p in (out / "s" / "partial").iterdir() if p.is_dir()]


WORKER_SCRIPT = """
import os, signal, sys, time
import numpy as np
from capture.flow import FlowConfig, FlowWorker

def frame(i):
    img = np.zeros((180, 320, 3), np.uint8)
    img[:, i * 4 : i * 4 + 40] = 255
    return img

if __name__ == "__main__":
    case = sys.argv[1]
    worker = FlowWorker(FlowConfig(preset="ultrafast"))
    print(worker.pid, flush=True)
    if case == "start-up":  # the recorder dies while its worker is still starting
        os.kill(os.getpid(), signal.SIGKILL)
    if case == "sigint":  # Ctrl+C reaches the worker while it starts (the process group)
        os.kill(worker.pid, signal.SIGINT)
    if case == "dead":  # the worker was killed; the recorder goes on and exits
        os.kill(worker.pid, signal.SIGKILL)
        while worker._proc.is_alive():
            time.sleep(0.05)
    for i in range(1, 21):
        worker.submit("CLIP", i, frame(i))
    worker.end_clip("CLIP")
    print(worker.wait_clip("CLIP", timeout=120), worker.pairs.get("CLIP", 0), flush=True)
    if case == "torn":  # killed in the middle of sending a frame: the worker reads half of it
        import struct
        os.write(worker._jobs._writer.fileno(), struct.pack("!i", 1 << 24) + b"x" * 1000)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    worker.close()
    print("exited", flush=True)
"""


def _run_worker_script(tmp_path: Path, case: str) -> tuple[subprocess.Popen, int]:
    script = tmp_path / "worker_case.py"
    script.write_text(WORKER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(script), case]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, **pipes)
    worker = int(proc.stdout.readline())
    return proc, worker


@pytest.mark.parametrize("case", ["start-up", "torn"])
def test_the_flow_worker_leaves_when_its_recorder_is_killed(tmp_path, case):
    """kill -9 of the recorder at the two moments its worker's own check never ran: while the
    worker starts, and in the middle of sending it a frame (it waited forever, ~50 MB each)."""
    proc, worker = _run_worker_script(tmp_path, case)
    proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL
    assert not _wait_gone([worker]), "the flow worker outlived its recorder"


@pytest.mark.parametrize("case", ["sigint", "dead"])
def test_the_recorder_exits_whatever_happened_to_its_flow_worker(tmp_path, case):
    proc, worker = _run_worker_script(tmp_path, case)
    try:
        output, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the process hung at exit ({case})")
    lines = output.split()
    assert proc.returncode == 0 and lines[-1] == "exited", output
    if case == "sigint":  # the worker ignored Ctrl+C and computed every pair
        assert lines[-3:-1] == ["True", "19"], output
        assert "KeyboardInterrupt" not in output
