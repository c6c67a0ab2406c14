"""Benchmark: the recorder live, as a user runs it: the synthetic source paced at 30 fps with
1280x720 colour and skeletons, live DIS optical flow in the worker process, clips of 5 s.

Reports, side by side for flow on/off (same source, same machine, one run): sustained frames/s
written, frames dropped (gaps in the device timestamps: the real-time source loses frames when
the process cannot keep up, as an Azure Kinect does), frames lost to a full recorder queue, CPU
use of the recorder process plus its flow worker (in cores, of the machine's cores), and the
flow pairs written live.

    python bench/bench_recorder.py [--seconds 20] [--fps 30] [--width 1280 --height 720]

``--durability`` instead measures what making a finished clip power-cut safe costs: the time to
finalize partial clips (AVI remux, .skeleton, timestamps, live-flow folder) with every fsync
(files, then folders) against the same work with fsync made a no-op, side by side.

    python bench/bench_recorder.py --durability [--clips 5] [--clip-seconds 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the joined flow worker
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(seconds: float, fps: int, width: int, height: int, flow: bool, preset: str) -> dict:
    from capture.flow import FlowConfig
    from capture.recorder import RecordConfig, Recorder
    from capture.source import open_source
    from xmkd.recordings import Session

    out = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        source = open_source(f"synthetic?fps={fps}&width={width}&height={height}&realtime=1")
        config = RecordConfig(
            clip_seconds=5.0,
            max_seconds=seconds,
            flow=flow,
            flow_config=FlowConfig(preset=preset),
            min_free_mb=200,
        )
        recorder = Recorder([source], out / "s", config, log=lambda m: None)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        recorder.start()
        stats = recorder.wait()
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        clips = Session.open(out / "s").clips
        frames = sum(c.frames for c in clips)
        flow_pairs = sum(c.meta.get("flow_pairs", 0) for c in clips)
        return {
            "frames": frames,
            "fps": frames / seconds,
            "dropped": stats["dropped_frames"][1],
            "overflow": stats["queue_overflow"][1],
            "cpu_cores": cpu / wall,
            "flow_pairs": flow_pairs,
            "clips": len(clips),
            "finish_s": wall - seconds,
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def finalize_time(clips: int, frames: int, fsync: bool, root: Path) -> float:
    """Seconds to finalize ``clips`` partial clips of ``frames`` 1280x720 frames with live flow
    (``fsync`` False: os.fsync does nothing, as before the durability fix)."""
    import cv2
    import numpy as np

    from capture.recorder import PartialClip, finalize_partial
    from capture.source import Body, Frame
    from xmkd.recordings import make_session_dirs, new_session_info, write_session_json

    make_session_dirs(root)
    write_session_json(root, new_session_info("bench", [{"camera": 1}], {"fps": 30.0}))
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 3)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    flow_jpeg = cv2.imencode(".jpg", image[:256, :456, 0])[1].tobytes()
    body = [Body(1, np.tile([0.0, 0.0, 3.0], (25, 1)))]
    folders = []
    for c in range(clips):
        clip = PartialClip(root, f"S001C001P001R{c + 1:03d}A000", 30.0, 1, {"flow": True})
        clip.flow_dir.mkdir(parents=True)
        for i in range(frames):
            clip.add(jpeg, Frame(i, None, None, body, int(i * 1e6 / 30), 0))
            if i:
                for axis in "xy":
                    (clip.flow_dir / f"flow_{axis}_{i:05d}.jpg").write_bytes(flow_jpeg)
            if (i + 1) % 15 == 0:
                clip.flush()
        clip.flush()
        folders.append(clip.dir)
    real = os.fsync
    if not fsync:
        os.fsync = lambda fd: None
    try:
        t0 = time.perf_counter()
        for folder in folders:
            finalize_partial(folder, root, log=lambda m: None)
        return time.perf_counter() - t0
    finally:
        os.fsync = real


def durability(clips: int, clip_seconds: float) -> None:
    frames = int(round(clip_seconds * 30))
    out = Path(tempfile.mkdtemp(prefix="bench-durable-", dir="."))
    try:
        rows = {}
        for fsync in (False, True, False, True):  # interleaved: the page cache warms for both
            key = "fsync" if fsync else "no fsync"
            seconds = finalize_time(clips, frames, fsync, out / f"{key}-{len(rows)}")
            rows.setdefault(key, []).append(seconds)
        best = {k: min(v) for k, v in rows.items()}
        print(f"finalize {clips} clips of {frames} frames (1280x720 MJPEG, live flow) on "
              f"{Path('.').resolve()}'s disk, best of 2:")  # fmt: skip
        for key, seconds in best.items():
            print(f"{key:>10}: {seconds:6.2f} s ({seconds / clips * 1000:.0f} ms per clip)")
        print(f"ratio fsync / no fsync: {best['fsync'] / best['no fsync']:.2f}")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durability", action="store_true", help="measure the fsync cost")
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--preset", default="fast", help="DIS preset of the live flow")
    args = parser.parse_args()
    if args.durability:
        durability(args.clips, args.clip_seconds)
        return
    load = os.getloadavg()[0]
    print(f"synthetic source {args.width}x{args.height} at {args.fps} fps for {args.seconds:g} s, "
          f"{os.cpu_count()} cores, load average {load:.1f} before the run")  # fmt: skip
    rows = {
        f"flow dis-{args.preset}": run(args.seconds, args.fps, args.width, args.height, True,
                                       args.preset),
        "no flow": run(args.seconds, args.fps, args.width, args.height, False, args.preset),
    }  # fmt: skip
    header = ("mode", "frames", "fps", "dropped", "overflow", "cpu cores", "flow pairs", "finish s")
    print("".join(f"{h:>12}" for h in header))
    for name, r in rows.items():
        print(f"{name:>12}{r['frames']:>12}{r['fps']:>12.1f}{r['dropped']:>12}{r['overflow']:>12}"
              f"{r['cpu_cores']:>12.2f}{r['flow_pairs']:>12}{r['finish_s']:>12.1f}")  # fmt: skip
    print("fps = frames written / recording seconds (target: the source's fps); dropped = gaps in "
          "device timestamps; overflow = frames the recorder's queue refused; finish s = time "
          "after the stop to finalize the last clips")  # fmt: skip


if __name__ == "__main__":
    main()
