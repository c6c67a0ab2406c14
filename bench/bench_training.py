"""Benchmark: distillation training throughput for K = 1, 2, 3 students, and teacher labeling.

All numbers come from one run on one machine, side by side:

* training samples/s of one epoch of ``--steps`` batches for K = 1, 2, 3 students of each
  architecture (CE + mutual loss, each student its reference optimizer), through the trainer's
  own ``train_step`` and a DataLoader whose items are prepared by the shared window
  preprocessing (``xmkd.preprocess.prepare_window``, training mode) from raw clips in memory,
  so the once-per-batch data pass is part of the epoch as in real training;
* the ratio of the K = 3 to the K = 1 epoch time per architecture (target <= 2.2: the data pass
  is shared, only the students' compute grows with K). The K settings are timed interleaved,
  round after round, keeping each one's best epoch, so load from other processes on a shared
  machine affects them alike. The data pass alone is timed too: its share of a K = 1 epoch
  says how far sharing it can take the ratio when each student's compute stays the same;
* teacher labeling samples/s (``xmkd.train.label.label_dataset``: batched TSN forward, cache
  writes included) for the RGB-difference teacher.

CPU-sized widths by default; pass ``--width 1 --frames 300`` on a GPU for reference sizes.

    python bench/bench_training.py [--steps 12] [--repeat 3] [--threads 1] [--device cpu]
        [--variants]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from xmkd.config import arch_defaults
from xmkd.losses import StudentLoss
from xmkd.models import build_student
from xmkd.preprocess import default_input_spec, prepare_window, student_kwargs
from xmkd.train.distill import (
    autocast_dtype,
    build_optimizer,
    train_step,
    use_deterministic_kernels,
)

NUM_CLASSES = 10


class RawClips(Dataset):
    """Raw skeleton clips (3, T, 25, 2) in memory, prepared per item like the real datasets."""

    def __init__(self, n: int, frames: int, spec, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.clips = rng.normal(0.0, 0.3, size=(n, 3, frames, 25, 2)).astype(np.float32)
        self.clips[..., 1] = 0.0  # one person, as most clips
        self.labels = rng.integers(0, NUM_CLASSES, n)
        self.spec = spec
        self.rng = np.random.default_rng(seed + 1)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        x = prepare_window(self.clips[i], None, self.spec, train=True, rng=self.rng)
        return torch.from_numpy(x), int(self.labels[i]), i


class RandomVideos(Dataset):
    def __init__(self, n: int, shape: tuple[int, ...]):
        self.x = torch.randn(n, *shape)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], -1, i


class Setting:
    """K students of one architecture with their optimizers and a loader over raw clips."""

    def __init__(self, arch: str, k: int, args: argparse.Namespace):
        spec = default_input_spec(arch)
        if arch == "stgcn":
            spec = spec.replace(window=args.frames, fit="resize")
        self.data = RawClips(args.batch * args.steps, max(args.frames, 64), spec)
        torch.manual_seed(0)
        kwargs = student_kwargs(arch, spec)
        self.models = [
            build_student(arch, NUM_CLASSES, width=args.width, **kwargs).to(args.device).train()
            for _ in range(k)
        ]
        optim = arch_defaults(arch).optim
        self.optimizers = [build_optimizer(optim, m.parameters()) for m in self.models]
        self.loss_fn = StudentLoss("ce", mutual=True)
        self.teacher = torch.randn(len(self.data), NUM_CLASSES)
        self.loader = DataLoader(
            self.data, batch_size=args.batch, shuffle=True, num_workers=args.workers
        )
        self.device = args.device
        self.autocast: torch.dtype | None = None  # set by bench_variants

    def epoch(self, limit: int | None = None) -> float:
        """Seconds for one pass over the loader (loading, preprocessing, K student steps)."""
        self._sync()
        t0 = time.perf_counter()
        for step, (x, _, index) in enumerate(self.loader):
            if limit is not None and step >= limit:
                break
            target = self.teacher[index].to(self.device)
            x = x.to(self.device)
            models, optimizers = self.models, self.optimizers
            train_step(models, optimizers, self.loss_fn, x, target, autocast=self.autocast)
        self._sync()
        return time.perf_counter() - t0

    def data_pass(self) -> float:
        """Seconds for one pass over the loader alone (loading and preprocessing, no student)."""
        t0 = time.perf_counter()
        for _ in self.loader:
            pass
        return time.perf_counter() - t0

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


def bench_arch(
    arch: str, ks: list[int], args: argparse.Namespace
) -> tuple[dict[int, float], float]:
    """Best epoch time per K, and the best time of the shared data pass alone; the K settings
    run interleaved, round after round, so a load change on a shared machine hits every K
    alike."""
    settings = {k: Setting(arch, k, args) for k in ks}
    for s in settings.values():
        s.epoch(limit=2)  # warm-up (allocator, first-call overheads)
    best = {k: float("inf") for k in ks}
    data = float("inf")
    for _ in range(args.repeat):
        for k, s in settings.items():
            best[k] = min(best[k], s.epoch())
        data = min(data, settings[ks[0]].data_pass())
    return best, data


def bench_variants(arch: str, args: argparse.Namespace) -> dict[str, float]:
    """Best epoch of K = 2 students trained as by default ("fp32"), with the deterministic
    kernels of ``--deterministic`` and, on a GPU, with ``--precision bf16``; interleaved round
    after round."""
    setting = Setting(arch, 2, args)
    gpu = ["bf16", "cudnn-benchmark", "bf16+cudnn-benchmark"]
    variants = ["fp32", "deterministic"] + (gpu if args.device.startswith("cuda") else [])
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeat):
        for variant in variants:
            use_deterministic_kernels(variant == "deterministic")
            torch.backends.cudnn.benchmark = "cudnn-benchmark" in variant
            bf16 = variant.startswith("bf16")
            setting.autocast = autocast_dtype("bf16", args.device) if bf16 else None
            setting.epoch(limit=1)  # warm-up: kernels are chosen anew
            best[variant] = min(best[variant], setting.epoch())
    use_deterministic_kernels(False)
    torch.backends.cudnn.benchmark = False
    return best


def bench_labeling(args: argparse.Namespace) -> dict[str, float]:
    from xmkd.models import TSN
    from xmkd.train.label import label_dataset

    torch.manual_seed(0)
    teacher = TSN(NUM_CLASSES, modality="rgbdiff", width=args.width, partial_bn=False)
    spec = teacher.input_spec(crop_size=args.crop)
    n = args.batch * args.steps
    data = RandomVideos(n, (spec.num_segments, spec.channels, args.crop, args.crop))
    names = [f"S001C001P{i // 100 + 1:03d}R001A{i % 100 + 1:03d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "labels.pt"
        # a warm-up run on a separate file, then the measured one
        label_dataset(teacher, data, names, Path(tmp) / "warm.pt", [str(c) for c in range(10)],
                      batch_size=args.batch, device=args.device, progress=False)  # fmt: skip
        t0 = time.perf_counter()
        _, facts = label_dataset(
            teacher, data, names, out, [str(c) for c in range(NUM_CLASSES)],
            modality="rgbdiff", batch_size=args.batch, device=args.device, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    return {"samples_per_s": facts["labeled"] / seconds, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default="stgcn,hcn")
    parser.add_argument("--ks", default="1,2,3")
    parser.add_argument("--steps", type=int, default=12, help="batches per measured epoch")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--frames", type=int, default=64, help="ST-GCN window (HCN: 32)")
    parser.add_argument("--crop", type=int, default=64, help="teacher input size")
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved rounds (best epoch per K kept)"
    )
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also time K=2 epochs with the deterministic kernels of `--deterministic` training "
        "and, on a GPU, with `--precision bf16`, against the default",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.batch}, "
        f"{args.steps} batches/epoch, width {args.width}, ST-GCN window {args.frames}"
    )
    print(f"{'arch':6} {'K':>2} {'epoch s':>9} {'samples/s':>10} {'vs K=1':>7}")
    ratios = {}
    for arch in args.archs.split(","):
        best, data = bench_arch(arch, ks, args)
        base = best[ks[0]]
        for k in ks:
            rate = args.batch * args.steps / best[k]
            print(f"{arch:6} {k:>2} {best[k]:9.3f} {rate:10.1f} {best[k] / base:7.2f}")
        if 1 in ks and max(ks) > 1:
            ratios[arch] = (best[max(ks)] / best[1], data / best[1])
    kmax = max(ks)
    for arch, (rel, share) in ratios.items():
        verdict = "meets" if rel <= 2.2 else "misses"
        # With the data pass shared and each student's compute unchanged, K students cost
        # share + K * (1 - share) of one: the bound any scheduling of the same work reaches.
        bound = share + kmax * (1 - share)
        print(
            f"{arch}: K={kmax} / K=1 epoch time = {rel:.2f} ({verdict} the target <= 2.2); "
            f"the shared data pass is {100 * share:.1f}% of a K=1 epoch, so sharing it alone "
            f"gives {bound:.2f}"
        )
    if args.variants:
        for arch in args.archs.split(","):
            t = bench_variants(arch, args)
            others = ", ".join(
                f"{name} {t[name]:.3f} s = {t[name] / t['fp32']:.2f}x" for name in list(t)[1:]
            )
            print(f"{arch}: K=2 epoch time, default (fp32) {t['fp32']:.3f} s; {others}")
    lab = bench_labeling(args)
    print(
        f"teacher labeling (TSN rgbdiff, width {args.width}, {args.crop}px, 3 segments): "
        f"{lab['samples_per_s']:.1f} clips/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
