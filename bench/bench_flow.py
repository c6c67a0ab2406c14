"""Benchmark: optical flow frames/s per method and preset, side by side in one run.

Frames: a 720p synthetic-source stream (the generator's rendered actions, as `xmkd record`
sees them) or random textured frames, resized to the TSN resolution (short side 256) as
`capture.flow` does; the time per pair includes that resize and the grayscale conversion, not
the JPEG encoding (reported separately). Methods: DIS ultrafast / fast / medium, Farneback for
reference, and TV-L1 when opencv-contrib is installed (it is not timed otherwise).

    python bench/bench_flow.py [--frames 60] [--threads 1] [--short-side 256]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from capture.flow import FlowComputer, FlowConfig, flow_input


def synthetic_frames(n: int) -> list[np.ndarray]:
    from capture.source import open_source

    spec = f"synthetic?realtime=0&width=1280&height=720&clips={max(1, n // 40 + 1)}"
    with open_source(spec, max_frames=n) as src:
        return [f.color for f in src]


def time_method(name: str, frames: list[np.ndarray], short_side: int) -> float:
    if name == "farneback":
        start = time.perf_counter()
        prev = flow_input(frames[0], short_side)
        for frame in frames[1:]:
            gray = flow_input(frame, short_side)
            cv2.calcOpticalFlowFarneback(prev, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            prev = gray
        return (len(frames) - 1) / (time.perf_counter() - start)
    method, _, preset = name.partition("-")
    computer = FlowComputer(FlowConfig(method=method, preset=preset or "fast",
                                       short_side=short_side))  # fmt: skip
    start = time.perf_counter()
    for frame in frames:
        computer.push(frame)
    return (len(frames) - 1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1)")
    parser.add_argument("--short-side", type=int, default=256)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    frames = synthetic_frames(args.frames)
    h, w = frames[0].shape[:2]
    small = flow_input(frames[0], args.short_side)
    print(f"{len(frames)} frames {w}x{h} -> flow at {small.shape[1]}x{small.shape[0]}, "
          f"OpenCV {cv2.__version__}, {args.threads} thread(s)")  # fmt: skip
    methods = ["dis-ultrafast", "dis-fast", "dis-medium", "farneback"]
    if hasattr(cv2, "optflow"):
        methods.append("tvl1")
    else:
        print("tvl1: not timed (cv2.optflow needs opencv-contrib-python)")
    results = {m: time_method(m, frames if m != "tvl1" else frames[:6], args.short_side)
               for m in methods}  # fmt: skip
    from xmkd.recordings import encode_flow

    computer = FlowComputer(FlowConfig(preset="fast"))
    computer.push(frames[0])
    flow = computer.push(frames[1])
    start = time.perf_counter()
    for _ in range(20):
        x, y = encode_flow(flow)
        cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imencode(".jpg", y, [cv2.IMWRITE_JPEG_QUALITY, 95])
    encode_fps = 20 / (time.perf_counter() - start)
    start = time.perf_counter()
    for frame in frames:
        flow_input(frame, args.short_side)
    resize_fps = len(frames) / (time.perf_counter() - start)
    base = results["dis-fast"]
    print(f"{'method':<15}{'pairs/s':>10}{'x dis-fast':>12}")
    for name, fps in results.items():
        print(f"{name:<15}{fps:>10.1f}{fps / base:>12.2f}")
    print(
        f"{'(resize only)':<15}{resize_fps:>10.1f}   720p -> TSN size + grayscale, included above"
    )
    print(f"{'(store pair)':<15}{encode_fps:>10.1f}   quantise + 2 JPEGs, not included above")


if __name__ == "__main__":
    main()
