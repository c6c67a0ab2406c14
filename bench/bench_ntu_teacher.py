"""Benchmark: the TSN teacher's training and labeling throughput on NTU-like data ingested by
``xmkd prepare-ntu --rgb`` (issue 12), with the projected wall time for NTU-60.

In one run, with the project's own commands (called in-process through ``xmkd.cli.main``):

1. an NTU-like download (``xmkd.synth.ntu_like``: NTU-named 1920x1080 30 fps XVID AVIs rendered
   by the synthetic generator, paired .skeleton files, Teacher-Train and Student-Train subjects
   of the paper's protocol), reused from --work DIR when already there;
2. ``xmkd prepare-ntu --rgb`` into a fresh packed folder: wall time, videos/s, frames/s;
3. per modality (rgb and rgbdiff, side by side): ``xmkd teacher train --packed`` for a few
   epochs with the paper's recipe sizes (ResNet-18 width 1.0, 224x224 crops, 3 segments) on
   --device: training clips/s over the epochs after the first (its worker start, cuDNN tuning
   and allocator warm-up are left out), the share of the training loop spent waiting for the
   data loader (--workers), the time to the first batch of an epoch (workers start anew each
   epoch); then ``xmkd label --packed`` on Student-Train: clips/s after the first batch (the
   workers' start and cuDNN's tuning are paid once per run) and the whole pass;
4. the projected wall time for NTU-60's Teacher-Train (80 epochs, the paper's TSN recipe for
   RGB and RGB-diff) and for labeling Student-Train at the measured rates.

    python bench/bench_ntu_teacher.py [--quick] [--device cuda] [--workers 8] [--clips 96]
    python bench/bench_ntu_teacher.py --loader-only [--workers 1] [--batches 8]

--loader-only: no model; the teacher's DataLoader alone (Teacher-Train, training augmentation,
and the labeler's test-time input) timed side by side for the first loading path ("before":
AVI chunk table walked per item, every full-size frame copied BGR->RGB, float32 arithmetic
over the snippet, workers restarted each epoch, OpenCV's thread pool in every worker; kept in
this file, unchanged, as the baseline) and the project's ("after"); clips/s per worker.

--quick: 24 clips of 48 frames, width 0.25, 3 epochs, batch 4 (under a minute on a 2-core CPU).
The loop's times come from the trainer's own DataLoader (timed by wrapping it here); numbers
depend on the machine and its load (printed); the modalities are measured back to back on the
same data. At width 0.25 the RGB-diff stem (15 input channels) is a large part of the compute;
at width 1.0 much less.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: NTU-60 cross-subject training samples (Shahroudy et al. 2016: 40,320 train, 16,560 test).
XSUB60_TRAIN_SAMPLES = 40_320
PAPER_MODALITY_EPOCHS = {"rgb": 80, "rgbdiff": 80}


class BenchError(Exception):
    """One sentence for the user; printed without a traceback."""


# ---------------------------------------------------------------------------------------------
# Timing the trainer's and the labeler's loops
class _LoopTimes:
    """One record per pass over a timed DataLoader: wall time of the loop, time spent waiting
    in the loader's ``next`` (the consumer is synchronous: the trainer reads the loss back every
    step), clips, time to the first batch."""

    def __init__(self) -> None:
        self.passes: list[dict[str, float]] = []


def _timed_loader_class(times: _LoopTimes):
    from torch.utils.data import DataLoader

    class TimedDataLoader(DataLoader):
        def __iter__(self):
            it = super().__iter__()
            record = {"wait": 0.0, "clips": 0, "batches": 0, "first": 0.0, "loop": 0.0}
            record["first_clips"] = 0
            times.passes.append(record)
            start = time.perf_counter()
            while True:
                t = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                record["wait"] += time.perf_counter() - t
                if not record["batches"]:
                    record["first"] = time.perf_counter() - start
                    record["first_clips"] = len(batch[0])
                record["batches"] += 1
                record["clips"] += len(batch[0])
                yield batch
            record["loop"] = time.perf_counter() - start

    return TimedDataLoader


@contextlib.contextmanager
def timed_loaders(times: _LoopTimes):
    """Swap the DataLoader of the teacher trainer and of the labeler for the timed one."""
    import xmkd.train.label as label_module
    import xmkd.train.teacher as teacher_module

    modules = (teacher_module, label_module)
    if not all(hasattr(m, "DataLoader") for m in modules):
        raise BenchError(
            "xmkd.train.teacher or xmkd.train.label no longer imports DataLoader by name; "
            "update timed_loaders() in this benchmark"
        )
    saved = [m.DataLoader for m in modules]
    timed = _timed_loader_class(times)
    try:
        for m in modules:
            m.DataLoader = timed
        yield
    finally:
        for m, original in zip(modules, saved):
            m.DataLoader = original


def xmkd(argv: list[str]) -> float:
    """Run an xmkd command in-process; its output is shown only when it fails. Returns seconds."""
    from xmkd.cli import main

    out = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main([str(a) for a in argv])
    seconds = time.perf_counter() - t
    if rc:
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        print("\n".join(lines[-15:]), file=sys.stderr)
        last = lines[-1] if lines else "no output"
        raise BenchError(f"xmkd {argv[0]} failed with exit code {rc}: {last}")
    return seconds


# ---------------------------------------------------------------------------------------------
def device_header(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = platform.processor() or platform.machine()
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    loads = f", load average {load[0]:.2f}" if load else ""
    return (
        f"torch {torch.__version__}, device {device} ({name}), {os.cpu_count()} CPU threads, "
        f"torch intra-op threads {torch.get_num_threads()}{loads}"
    )


def ntu60_protocol_counts() -> tuple[dict[str, int], str]:
    """Teacher-Train and Student-Train sizes of NTU-60 under the default protocol split.

    xmkd knows the subjects of each part and the official missing-skeleton list, not the samples
    per subject; the parts are taken as half the x-sub training set each, less the listed
    missing samples of their subjects (prepare-ntu skips those)."""
    from xmkd.ntu.names import SampleName
    from xmkd.ntu.splits import in_benchmark, missing_skeletons, protocol_split

    counts = {}
    for part in ("teacher_train", "student_train"):
        missing = sum(
            1
            for n in missing_skeletons("ntu60")
            if in_benchmark(SampleName.parse(n), "xsub60") == "train" and protocol_split(n) == part
        )
        counts[part] = XSUB60_TRAIN_SAMPLES // 2 - missing
    why = (
        f"each part taken as half of x-sub's {XSUB60_TRAIN_SAMPLES:,} training samples (xmkd "
        "does not hold per-subject counts) less its samples on the official missing-skeleton list"
    )
    return counts, why


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from xmkd.commands._args import device_name  # the CLI's own check of --device

    def positive(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
        return value

    def width(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not 0 < value <= 4:
            raise argparse.ArgumentTypeError(f"must be in (0, 4], got {value}")
        return value

    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="24 clips, 48 frames, width 0.25")
    ap.add_argument("--work", type=Path, default=None, help="keep the data here (reused)")
    ap.add_argument(
        "--device", type=device_name, default=None, help="cpu, cuda, cuda:N (default: cuda if any)"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="teacher/label data loader workers (default: CPU threads - 1, at most 8)",
    )
    ap.add_argument("--ingest-workers", type=positive, default=cores, help="prepare-ntu workers")
    ap.add_argument("--clips", type=positive, default=None, help="NTU-like clips (default 96)")
    ap.add_argument("--frames", type=positive, default=None, help="frames per clip (default 90)")
    ap.add_argument("--classes", type=positive, default=8, help="actions A001.. (default 8)")
    ap.add_argument("--codec", default="XVID", help="source AVI codec (NTU: XVID)")
    ap.add_argument("--modality", nargs="+", choices=("rgb", "rgbdiff"), default=["rgb", "rgbdiff"])
    ap.add_argument("--width", type=width, default=None, help="ResNet width (default 1.0)")
    ap.add_argument("--crop-size", type=positive, default=224)
    ap.add_argument("--segments", type=positive, default=3)
    ap.add_argument("--epochs", type=positive, default=None, help="default 5 (--quick 3)")
    ap.add_argument("--batch-size", type=positive, default=None, help="default 16 (--quick 4)")
    ap.add_argument("--label-batch-size", type=positive, default=None, help="default: --batch-size")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--loader-only", action="store_true", help="time the data loader alone")
    ap.add_argument("--batches", type=positive, default=8, help="--loader-only: batches timed")
    args = ap.parse_args(argv)
    quick = args.quick
    args.clips = args.clips or (24 if quick else 96)
    args.frames = args.frames or (48 if quick else 90)
    args.width = args.width or (0.25 if quick else 1.0)
    args.epochs = args.epochs or (3 if quick else 5)
    args.batch_size = args.batch_size or (4 if quick else 16)
    args.label_batch_size = args.label_batch_size or args.batch_size
    if args.workers is None:
        args.workers = min(8, max(cores - 1, 0))
    if args.workers < 0:
        ap.error(f"--workers must be 0 or more, got {args.workers}")
    if args.clips < 4:
        ap.error(f"--clips must be at least 4 (two per protocol part), got {args.clips}")
    if args.frames < 16:
        ap.error(
            f"--frames must be at least 16 (rgbdiff draws 6 frames per segment), got {args.frames}"
        )
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: the first epoch is warm-up and is not measured")
    if len(args.codec) != 4:
        ap.error(f"--codec must be a four-character code such as XVID or MJPG, got {args.codec!r}")
    return args


def run(args: argparse.Namespace) -> None:
    from xmkd.config import resolve_device
    from xmkd.synth.ntu_like import write_ntu_like

    device = resolve_device(args.device or "auto")
    print(device_header(device), flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_ntu_teacher_"))
    if work.exists() and not work.is_dir():
        raise BenchError(f"--work {work} is a file, not a folder")
    try:
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        tree = write_ntu_like(
            work / "ntu",
            args.clips,
            frames=args.frames,
            classes=args.classes,
            codec=args.codec,
            workers=args.ingest_workers,
        )
        teach, stud = (len(tree.splits[p]) for p in ("teacher_train", "student_train"))
        print(
            f"NTU-like download: {args.clips} 1920x1080 {args.codec} AVIs of {args.frames} "
            f"frames ({teach} Teacher-Train, {stud} Student-Train, {args.classes} classes) in "
            f"{tree.root}: {tree.written} written in {time.perf_counter() - t:.1f} s",
            flush=True,
        )

        packed = work / "packed"
        shutil.rmtree(packed, ignore_errors=True)  # ingestion is timed from scratch
        seconds = xmkd([
            "prepare-ntu", "--skeletons", tree.skeletons, "--rgb", tree.rgb, "--out", packed,
            "--workers", args.ingest_workers, "--no-progress",
        ])  # fmt: skip
        frames = args.clips * args.frames
        print(
            f"prepare-ntu --rgb ({args.ingest_workers} workers): {seconds:.1f} s, "
            f"{args.clips / seconds:.2f} videos/s, {frames / seconds:.0f} frames/s "
            f"({frames / seconds / args.ingest_workers:.0f} per worker; includes packing the "
            "skeletons and the process start-up)",
            flush=True,
        )

        if args.loader_only:
            loader_only(packed, device, args)
            return
        rows = {m: measure(m, packed, work, device, args) for m in args.modality}
        report(rows, args, device)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def measure(modality: str, packed: Path, work: Path, device: str, args) -> dict[str, float]:
    """Train the teacher of one modality and label Student-Train with it; returns the figures."""
    import torch

    run_dir = work / f"teacher-{modality}"
    shutil.rmtree(run_dir, ignore_errors=True)
    print(
        f"teacher {modality}: {args.epochs} epochs, batch {args.batch_size}, width {args.width}, "
        f"{args.crop_size}x{args.crop_size} crops, {args.segments} segments, {args.workers} "
        f"loader workers, {args.precision} ...",
        flush=True,
    )
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = _LoopTimes()
    with timed_loaders(times):
        wall = xmkd([
            "teacher", "train", "--packed", packed, "--out", run_dir, "--modality", modality,
            "--preset", "paper", "--width", args.width, "--crop-size", args.crop_size,
            "--segments", args.segments, "--epochs", args.epochs,
            "--batch-size", args.batch_size, "--device", device, "--workers", args.workers,
            "--precision", args.precision, "--quiet",
        ])  # fmt: skip
        epochs = times.passes
        if len(epochs) != args.epochs:
            raise BenchError(
                f"the trainer made {len(epochs)} passes over its data for {args.epochs} epochs; "
                "this benchmark's timing no longer matches xmkd.train.teacher"
            )
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
        times.passes = []
        xmkd([
            "label", "--teacher", run_dir / "teacher.pt", "--packed", packed,
            "--out", run_dir / "labels.pt", "--device", device,
            "--workers", args.workers, "--batch-size", args.label_batch_size, "--quiet",
        ])  # fmt: skip
        label = times.passes[0]
    measured = epochs[1:]
    # labels after the first batch: the workers' start and cuDNN's tuning are paid once per run
    # (a pass of one batch is taken whole)
    skip, skip_clips = (label["first"], label["first_clips"]) if label["batches"] > 1 else (0, 0)
    clips = sum(e["clips"] for e in measured)
    loop = sum(e["loop"] for e in measured)
    return {
        "train clips/s": clips / loop,
        "data-loading share": sum(e["wait"] for e in measured) / loop,
        "first batch of an epoch s": sum(e["first"] for e in measured) / len(measured),
        "epoch 1 (warm-up) s": epochs[0]["loop"],
        "steady epoch s": loop / len(measured),
        "teacher train wall s": wall,
        "label clips/s": (label["clips"] - skip_clips) / (label["loop"] - skip),
        "label loading share": (label["wait"] - skip) / (label["loop"] - skip),
        "label pass s": label["loop"],
        "peak GPU memory GiB": peak,
        "teacher clips": epochs[0]["clips"],
        "student clips": label["clips"],
    }


# ---------------------------------------------------------------------------------------------
# --loader-only: the first loading path, kept here as the baseline
def _before_read(path: Path, indices):
    """read_frames as first written: the chunk table walked on every call, then RGB by a copy
    of every full-size frame."""
    import cv2
    import numpy as np

    from xmkd.ntu.videos import avi_frame_index

    index = avi_frame_index(path)
    decoded = {}
    with open(path, "rb") as fh:
        for i in sorted(set(int(i) for i in indices)):
            offset, size = index[i]
            fh.seek(offset)
            decoded[i] = cv2.imdecode(np.frombuffer(fh.read(size), np.uint8), cv2.IMREAD_COLOR)
    bgr = np.stack([decoded[int(i)] for i in indices])
    return np.ascontiguousarray(bgr[..., ::-1])


def _before_snippets_input(snippets, spec, train, rng):
    """snippets_input as first written (rgb/rgbdiff): stack full crops, flip by a copy, float32
    arithmetic over the snippet, transpose copy."""
    import cv2
    import numpy as np
    import torch

    from xmkd.models.tsn import IMAGENET_MEAN, IMAGENET_STD

    def resize(img, w, h):
        same = img.shape[1] == w and img.shape[0] == h
        return img if same else cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)

    n, h, w, _ = snippets.shape
    size = spec.crop_size
    if train:
        short = min(h, w)
        cw = max(1, int(short * spec.scales[rng.integers(len(spec.scales))]))
        ch = max(1, int(short * spec.scales[rng.integers(len(spec.scales))]))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out = np.stack([resize(f[y0 : y0 + ch, x0 : x0 + cw], size, size) for f in snippets])
        if spec.flip and rng.random() < 0.5:
            out = out[:, :, ::-1]
        snippet = np.ascontiguousarray(out)
    else:
        scale = spec.scale_size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        frames = np.stack([resize(f, nw, nh) for f in snippets])
        y0, x0 = (nh - size) // 2, (nw - size) // 2
        snippet = np.ascontiguousarray(frames[:, y0 : y0 + size, x0 : x0 + size])
    x = snippet.astype(np.float32)
    x = (x / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    k, span = spec.num_segments, spec.span
    x = x.reshape(k, span, size, size, 3)
    if spec.modality == "rgbdiff":
        diffs = x[:, 1:] - x[:, :-1]
        x = np.concatenate([x[:, :1], diffs], axis=1) if spec.keep_rgb else diffs
    return torch.from_numpy(
        np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3).reshape(k, -1, size, size))
    )


def _before_dataset(packed: Path, part: str):
    from xmkd.data import PackedVideoDataset
    from xmkd.models.tsn import sample_segments

    class BeforeVideos(PackedVideoDataset):
        def teacher_input(self, index, spec, train=False, rng=None):
            n = int(self.frames[index])
            idx = sample_segments(n, spec.num_segments, spec.span, train, rng)
            frames = _before_read(self.videos[index], idx.reshape(-1))
            return _before_snippets_input(frames, spec, train, rng)

    return BeforeVideos(packed, part, "rgb")


def _time_loader(data, loader, epochs: int) -> tuple[float, float]:
    """Clips/s over the epochs after the first, and the first epoch's seconds."""
    seconds, clips, first = 0.0, 0, 0.0
    for epoch in range(epochs):
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        t = time.perf_counter()
        n = sum(len(batch[0]) for batch in loader)
        dt = time.perf_counter() - t
        if epoch == 0:
            first = dt
        else:
            seconds, clips = seconds + dt, clips + n
    return clips / seconds, first


def loader_only(packed: Path, device: str, args) -> None:
    """The teacher's loader alone, before and after, side by side (see the module docs)."""
    from torch.utils.data import DataLoader, Subset

    from xmkd.data import PackedVideoDataset
    from xmkd.models.tsn import TSNInputSpec
    from xmkd.train.inputs import TeacherClips, loader_options

    pin = device.startswith("cuda")
    workers = args.workers
    per = max(workers, 1)
    print(
        f"\nloader only: {args.batches} batches of {args.batch_size} per epoch, "
        f"{args.epochs} epochs (the first not measured), {workers} workers, "
        f"{args.crop_size}x{args.crop_size}, {args.segments} segments, pin_memory {pin}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPU threads",
        flush=True,
    )
    print(
        f"  {'':26s}{'before clips/s':>16s}{'after clips/s':>15s}{'per worker':>12s}{'ratio':>8s}"
    )
    for modality, train in (("rgb", True), ("rgbdiff", True), ("rgbdiff", False)):
        spec = TSNInputSpec(modality=modality, num_segments=args.segments, crop_size=args.crop_size)
        rates = []
        for path in ("before", "after"):
            if path == "before":
                base = _before_dataset(packed, "teacher_train")
                options = {"num_workers": workers, "pin_memory": pin}
            else:
                base = PackedVideoDataset(packed, "teacher_train", "rgb")
                options = loader_options(workers, pin_memory=pin)
            data = TeacherClips(base, spec, train=train, seed=0)
            count = min(len(data), args.batches * args.batch_size)
            items = Subset(data, range(count))
            loader = DataLoader(items, batch_size=args.batch_size, shuffle=train, **options)
            rate, _ = _time_loader(data, loader, args.epochs)
            rates.append(rate)
            del loader
        what = f"{modality} {'train' if train else 'label'} ({spec.span * spec.num_segments} fr)"
        print(
            f"  {what:26s}{rates[0]:16.1f}{rates[1]:15.1f}{rates[1] / per:12.1f}"
            f"{rates[1] / rates[0]:7.2f}x",
            flush=True,
        )
    print(f"  (load average now {os.getloadavg()[0]:.2f})")


def report(rows: dict[str, dict[str, float]], args, device: str) -> None:
    modalities = list(rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nTSN teacher on {device} (load average now {load:.2f}): ResNet-18 width {args.width}, "
        f"{args.crop_size}x{args.crop_size}, {args.segments} segments, batch {args.batch_size}, "
        f"{args.workers} loader workers, {args.precision}; epochs 2-{args.epochs} measured"
    )
    print(f"  {'':34s}" + "".join(f"{m:>14s}" for m in modalities))
    fmt = {
        "train clips/s": "{:14.1f}",
        "data-loading share": "{:14.0%}",
        "first batch of an epoch s": "{:14.2f}",
        "epoch 1 (warm-up) s": "{:14.2f}",
        "steady epoch s": "{:14.2f}",
        "teacher train wall s": "{:14.1f}",
        "label clips/s": "{:14.1f}",
        "label loading share": "{:14.0%}",
        "label pass s": "{:14.2f}",
    }
    if device.startswith("cuda"):
        fmt["peak GPU memory GiB"] = "{:14.2f}"
    for key, f in fmt.items():
        print(f"  {key:34s}" + "".join(f.format(rows[m][key]) for m in modalities))
    first = rows[modalities[0]]
    print(
        f"  (train: {first['teacher clips']} Teacher-Train clips per epoch; label: "
        f"{first['student clips']} Student-Train clips, rate and share after the first batch; "
        "'teacher train wall' includes the checkpoint every epoch and the evaluation on "
        "Student-Train)"
    )
    counts, why = ntu60_protocol_counts()
    print(
        f"\nNTU-60 projected on this device at these settings: Teacher-Train "
        f"{counts['teacher_train']:,} clips, Student-Train {counts['student_train']:,} clips "
        f"({why}):"
    )
    for m in modalities:
        epochs = PAPER_MODALITY_EPOCHS[m]
        train_s = counts["teacher_train"] * epochs / rows[m]["train clips/s"]
        label_s = counts["student_train"] / rows[m]["label clips/s"]
        print(
            f"  {m:8s} training {epochs} epochs {hours(train_s):>9s}   labeling Student-Train "
            f"{hours(label_s):>9s}"
        )
    if args.width != 1.0 or args.crop_size != 224 or args.segments != 3:
        print(
            "  (not the paper's teacher size: width 1.0, 224x224 crops and 3 segments are; "
            "this projection is for the size measured)"
        )
    print(
        "  (the paper's batch is 128; the projection assumes the measured clips/s at batch "
        f"{args.batch_size}; evaluation and checkpoints are extra)"
    )


def main(argv: list[str] | None = None) -> int:
    from xmkd.errors import XmkdError

    args = parse_args(argv)
    try:
        run(args)
    except (BenchError, XmkdError) as err:
        print(f"bench_ntu_teacher: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_ntu_teacher: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
