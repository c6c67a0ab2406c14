"""Benchmark: torchvision video teachers (``torchvision:ARCH``) at the input size their weights
define, per architecture: the input pipeline's time for one clip of a 30 fps NTU-sized video
(1920x1080 frames, 3 s) and the network's forward time for one clip, float32 (and with --bf16
bfloat16 under ``torch.autocast``), with the projected time to label NTU-60's Student-Train
(~16,000 clips).

Random-initialised networks (``random_init=True``): the speed does not depend on the weights,
and nothing is downloaded. Times are the median of --repeats forwards after one warm-up; they
depend on the machine and its load (printed).

    python bench/bench_torchvision_teacher.py [--arch r3d_18 s3d ...] [--device cuda]
        [--repeats 3] [--clips-per-video 1] [--batch 1] [--bf16] [--video-frames 90]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from xmkd.tables import print_table as table  # noqa: E402
from xmkd.teachers.torchvision_video import (  # noqa: E402
    ARCHS,
    ClipPipeline,
    open_torchvision_teacher,
    weights_enum,
)

STUDENT_TRAIN_CLIPS = 16_000  # NTU-60 x-sub Student-Train, about


def _timed(fn, repeats: int, device: str) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="clips per forward")
    parser.add_argument("--clips-per-video", type=int, default=1)
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time bfloat16 forwards (fast on CUDA; on CPUs without AVX512-BF16/AMX "
        "several times slower than float32)",
    )
    parser.add_argument("--video-frames", type=int, default=90, help="frames of the test video")
    args = parser.parse_args(argv)

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    video = np.random.default_rng(0).integers(
        0, 256, size=(args.video_frames, 1080, 1920, 3), dtype=np.uint8
    )
    rows = []
    for arch in tqdm(args.arch, desc="architectures", unit="arch"):
        teacher = open_torchvision_teacher(
            arch, random_init=True, clips_per_video=args.clips_per_video
        )
        spec = ClipPipeline.for_weights(weights_enum(arch).DEFAULT, args.clips_per_video)
        prep_s = _timed(partial(spec, video, 30.0), args.repeats, "cpu")
        x = spec(video, 30.0)
        batch = x.unsqueeze(0).expand(args.batch, *x.shape).contiguous().to(args.device)
        model = teacher.model.to(args.device)
        timings = {}
        for dtype in ("float32", "bfloat16") if args.bf16 else ("float32",):
            model.autocast_dtype = torch.bfloat16 if dtype == "bfloat16" else None
            with torch.inference_mode():
                timings[dtype] = _timed(partial(model, batch), args.repeats, args.device)
        per_clip = timings["float32"] / args.batch
        rows.append(
            (
                arch,
                "x".join(str(s) for s in x.shape),
                f"{prep_s * 1000:.0f}",
                f"{timings['float32']:.2f}",
                f"{timings['bfloat16']:.2f}" if "bfloat16" in timings else "-",
                f"{(per_clip + prep_s) * STUDENT_TRAIN_CLIPS / 3600:.1f}",
            )
        )
    table(
        ("arch", "input", "prep ms", "fp32 s", "bf16 s", "Student-Train h (fp32)"),
        rows,
    )


if __name__ == "__main__":
    main()
