"""Benchmark: NTU video ingestion per core, xmkd's stored clips vs mmaction2's rawframes.

Generates NTU-like 1920x1080 30 fps AVIs (the synthetic generator's render, upscaled; MPEG-4
part 2 "XVID" by default, --codec MJPG for Motion-JPEG sources), then in ONE process (= per core):

1. ingestion: xmkd's (decode, resize to short side 256, MJPEG AVI; also with DIS flow) vs
   rawframes (the same decode and resize, one JPEG file per frame, at quality 95, the usual
   setting, and 75, about the fixed quality of OpenCV's MJPEG writer: equal bytes per frame):
   videos/s, frames/s, bytes per stored frame, files per clip;
2. reading for TSN training: the frames of one training draw (3 segments; RGB 1 frame per
   segment, RGB-diff 6), from the AVI's chunk table (what the teacher does), from rawframes, and
   a full decode of the AVI (what a session clip costs): ms per clip;
3. the projected time to ingest all of NTU-60 (56,880 samples) on N cores, from the measured
   frames/s per core and the mean frames per sample (--mean-frames; default: the mean of the real
   NTU .skeleton samples in ../shared when present, else 89.4, their mean when measured).

    python bench/bench_ntu_ingest.py [--clips 4] [--frames 90] [--codec XVID] [--cores 1 8 32]

Times depend on the machine and its load (printed); ratios measured side by side are what carry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmkd.ntu import videos as V  # noqa: E402

NTU60_SAMPLES = 56_880
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ntu-samples"


def make_sources(root: Path, clips: int, frames: int, codec: str) -> list[V.VideoJob]:
    """NTU-named 1920x1080 AVIs rendered by the synthetic generator, with their skeletons
    (:mod:`xmkd.synth.ntu_like`, the generator bench_ntu_teacher uses too)."""
    from xmkd.errors import XmkdError
    from xmkd.synth.ntu_like import write_ntu_like

    try:
        tree = write_ntu_like(root, clips, frames=frames, classes=10, codec=codec)
    except XmkdError as err:
        raise SystemExit(str(err)) from None
    names = [name for part in tree.splits.values() for name in part]
    return [
        V.VideoJob(n, str(tree.rgb / f"{n}_rgb.avi"), str(tree.skeletons / f"{n}.skeleton"))
        for n in names
    ]


def ingest_rawframes(job: V.VideoJob, out: Path, quality: int) -> int:
    """mmaction2's rawframes: the same decode and resize, img_%05d.jpg per frame."""
    from capture.flow import tsn_size

    folder = out / job.name
    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(job.video)
    n = 0
    size = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        size = size or tsn_size(frame.shape[1], frame.shape[0], 256)
        frame = V._shrink(frame, size)  # the same resize as xmkd's
        n += 1
        cv2.imwrite(str(folder / f"img_{n:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    cap.release()
    return n


def dir_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def time_reads(avis: list[Path], raws: list[Path], draws: int) -> dict[str, dict[str, float]]:
    from xmkd.models.tsn import sample_segments
    from xmkd.recordings import read_video

    out: dict[str, dict[str, float]] = {}
    for label, span in (("rgb (3 x 1 frame)", 1), ("rgbdiff (3 x 6 frames)", 6)):
        rng = np.random.default_rng(0)
        plans = []
        for avi, raw in zip(avis, raws):
            n = len(V.avi_frame_index(avi))
            for _ in range(draws):
                plans.append((avi, raw, sample_segments(n, 3, span, True, rng).reshape(-1)))
        row = {}
        t = time.perf_counter()
        for avi, _, idx in plans:
            V.read_frames(avi, idx)
        row["avi chunks"] = (time.perf_counter() - t) / len(plans) * 1e3
        t = time.perf_counter()
        for _, raw, idx in plans:
            [cv2.imread(str(raw / f"img_{i + 1:05d}.jpg")) for i in idx]
        row["rawframes"] = (time.perf_counter() - t) / len(plans) * 1e3
        t = time.perf_counter()
        for avi, _, _ in plans[: max(2, len(plans) // 8)]:  # slow: fewer repeats
            read_video(avi)
        row["avi full decode"] = (time.perf_counter() - t) / max(2, len(plans) // 8) * 1e3
        out[label] = row
    return out


def mean_ntu_frames() -> tuple[float, str]:
    files = sorted(SHARED.glob("*.skeleton")) if SHARED.is_dir() else []
    if not files:
        return 89.4, "the mean of the 5 real NTU samples in ../shared, measured earlier"
    from xmkd.recordings import skeleton_frame_count

    counts = [skeleton_frame_count(f) for f in files]
    return float(np.mean(counts)), f"the mean of the {len(counts)} real NTU samples in {SHARED}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=90, help="frames per generated clip")
    ap.add_argument("--codec", default="XVID", help="source AVI codec (XVID, MJPG)")
    ap.add_argument("--jpeg-quality", type=int, nargs="+", default=[95, 75], help="rawframes")
    ap.add_argument("--draws", type=int, default=20, help="training draws per clip (reads)")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2, 8, 16, 32])
    ap.add_argument("--mean-frames", type=float, default=None)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # per core, as the ingestion workers run
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"machine: {os.cpu_count()} cores, load average {load}, OpenCV {cv2.__version__}")
    root = Path(tempfile.mkdtemp(prefix="bench_ntu_ingest_"))
    try:
        src = root / "src"
        src.mkdir()
        t = time.perf_counter()
        jobs = make_sources(src, args.clips, args.frames, args.codec)
        print(
            f"generated {len(jobs)} NTU-like 1920x1080 {args.codec} AVIs of {args.frames} frames "
            f"in {time.perf_counter() - t:.1f} s ({dir_bytes(src)[0] / 1e6:.1f} MB with skeletons)"
        )
        frames = len(jobs) * args.frames
        # formats interleaved clip by clip: a change of the machine's load hits them alike
        formats = {"xmkd: MJPEG AVI": "none", "xmkd: MJPEG AVI + DIS flow": "dis"}
        formats.update({f"rawframes JPEG q{q}": q for q in args.jpeg_quality})
        seconds = dict.fromkeys(formats, 0.0)
        for job in jobs:
            for label, what in formats.items():
                t = time.perf_counter()
                if isinstance(what, str):
                    options = V.VideoOptions(flow=what, min_free_bytes=0)
                    result = V._ingest_one(job, str(root / f"xmkd-{what}"), options)
                    assert "error" not in result, result
                else:
                    ingest_rawframes(job, root / f"rawframes-q{what}", what)
                seconds[label] += time.perf_counter() - t
        rows = {}
        for label, what in formats.items():
            if isinstance(what, str):  # size: the video, or with flow the flow JPEGs
                folder = root / f"xmkd-{what}"
                folder = folder / ("rgb" if what == "none" else "flow")
            else:
                folder = root / f"rawframes-q{what}"
            rows[label] = (seconds[label], *dir_bytes(folder), folder)

        print("\ningestion, one process (per core):")
        head = ("format", "videos/s", "frames/s", "KB/frame", "files/clip")
        print("  {:34s} {:>9s} {:>9s} {:>9s} {:>10s}".format(*head))
        base = None
        for label, (sec, size, files, _) in rows.items():
            fps = frames / sec
            base = base or fps
            what = "(size: the flow JPEGs)" if "flow" in label else ""
            print(
                f"  {label:34s} {len(jobs) / sec:9.2f} {fps:9.1f} {size / frames / 1e3:9.1f} "
                f"{files / len(jobs):10.1f} {what} x{fps / base:.2f}"
            )
        avis = [root / "xmkd-none" / "rgb" / f"{j.name}_rgb.avi" for j in jobs]
        raws = [root / f"rawframes-q{args.jpeg_quality[-1]}" / j.name for j in jobs]
        print(
            f"\nreading one TSN training draw (ms per clip, one process; rawframes "
            f"q{args.jpeg_quality[-1]}):"
        )
        for label, row in time_reads(avis, raws, args.draws).items():
            cells = "  ".join(f"{k} {v:6.2f}" for k, v in row.items())
            ratio = row["avi full decode"] / row["avi chunks"]
            print(f"  {label:24s} {cells}  (chunks {ratio:.1f}x faster than a full decode)")

        mean, why = (args.mean_frames, "--mean-frames") if args.mean_frames else mean_ntu_frames()
        total = NTU60_SAMPLES * mean
        print(
            f"\nNTU-60: {NTU60_SAMPLES} samples x {mean:.1f} frames ({why}) = "
            f"{total / 1e6:.2f} M frames; projected ingestion time on N cores (measured per-core "
            "rate, perfect scaling assumed; disk and memory bandwidth may cap it):"
        )
        for label, (sec, _, _, _) in rows.items():
            per_core = frames / sec
            cells = "  ".join(f"{n} cores {total / per_core / n / 3600:6.2f} h" for n in args.cores)
            print(f"  {label:34s} {cells}")
        rgb_bytes = rows["xmkd: MJPEG AVI"][1] / frames
        disk = [f"MJPEG AVI {rgb_bytes * total / 1e9:.0f} GB ({NTU60_SAMPLES} files)"]
        for q in args.jpeg_quality:
            raw_bytes = rows[f"rawframes JPEG q{q}"][1] / frames
            disk.append(
                f"rawframes q{q} {raw_bytes * total / 1e9:.0f} GB ({total / 1e6:.1f} M files)"
            )
        print("  disk for NTU-60: " + ", ".join(disk))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
