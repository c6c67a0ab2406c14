"""Arguments shared by the learning commands (teacher, label, distill, eval, reproduce, demo)."""

from __future__ import annotations

import argparse

from xmkd.ntu.splits import SPLIT_CHOICES


def add_data_args(p: argparse.ArgumentParser, split: str, video: bool = False) -> None:
    """--sessions / --packed / --split / --benchmark."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--sessions",
        nargs="+",
        default=[],
        metavar="DIR",
        help="session folder(s) in the recordings layout (xmkd record / xmkd synth)",
    )
    if not video:
        g.add_argument(
            "--packed",
            default=None,
            metavar="DIR",
            help="packed NTU RGB+D folder (xmkd prepare-ntu) instead of sessions",
        )
    g.add_argument(
        "--split",
        default=split,
        choices=SPLIT_CHOICES,
        help=f"protocol split to use (default {split}; 'all' = every clip, for your "
        "own unlabeled recordings)",
    )
    g.add_argument(
        "--benchmark",
        default="xsub60",
        choices=("xsub60", "xsub120"),
        help="NTU benchmark whose subject split defines the protocol (default xsub60)",
    )


def add_run_args(p: argparse.ArgumentParser, training: bool = False) -> None:
    """--device / --workers / --progress-json / --quiet (and --deterministic for training)."""
    g = p.add_argument_group("running")
    g.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:N (default: auto, the GPU when there is one)",
    )
    g.add_argument("--workers", type=int, default=None, help="data loader worker processes")
    if training:
        g.add_argument(
            "--deterministic",
            action="store_true",
            default=None,
            help="bit-identical repeats and resumes on a GPU (deterministic cuDNN and cuBLAS "
            "kernels; slower). CPU runs are reproducible without it",
        )
        g.add_argument(
            "--precision",
            choices=("fp32", "bf16"),
            default=None,
            help="fp32 (default), or bf16: the forward pass in bfloat16 on a CUDA GPU (Ampere or "
            "newer; losses, weights and optimizer stay float32)",
        )
    g.add_argument(
        "--progress-json",
        default=None,
        metavar="PATH|-",
        help="also write progress events as JSON lines to PATH, or stdout with '-' "
        "(they always go to RUN_DIR/progress.jsonl)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]
