"""Arguments shared by the learning commands (teacher, label, distill, eval, reproduce, demo)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from xmkd.commands import _args as A
from xmkd.ntu.splits import SPLIT_CHOICES


def add_data_args(p: argparse.ArgumentParser, split: str, video: bool = False) -> None:
    """--sessions / --packed / --split / --benchmark."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--sessions",
        nargs="+",
        type=A.existing_dir,
        default=[],
        metavar="DIR",
        help="session folder(s) in the recordings layout (xmkd record / xmkd synth)",
    )
    g.add_argument(
        "--packed",
        type=A.existing_dir,
        default=None,
        metavar="DIR",
        help="packed NTU RGB+D folder (xmkd prepare-ntu"
        + (" --rgb: with its videos)" if video else ")")
        + " instead of sessions",
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
        type=A.device_name,
        default=None,
        help="cpu, cuda, cuda:N (default: auto, the GPU when there is one)",
    )
    g.add_argument(
        "--workers",
        type=A.workers_int,
        default=None,
        help="data loader worker processes (0: load in the main process)",
    )
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
        type=A.out_file_or_stdout,
        default=None,
        metavar="PATH|-",
        help="also write progress events as JSON lines to PATH, or stdout with '-' "
        "(they always go to RUN_DIR/progress.jsonl)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


#: --milestones: epochs (at least 1) after which the lr steps; checked when parsed
parse_ints = A.int_list(1, "10,50")


def choose_preset(
    given: str | None, sessions: Sequence[str], packed: str | None = None
) -> tuple[str, str]:
    """The preset a training command runs with, and why (for its start line).

    ``--preset`` wins. Without it the data decides: sessions that are all synthetic (written by
    ``xmkd synth`` or recorded from the synthetic source: 64x64 video, short clips) get the
    CPU-sized "synthetic" preset; packed NTU RGB+D and recorded sessions get "paper". The
    paper's recipe on synthetic data was the new user's trap: hours of training on a CPU for
    data the small models learn in minutes.
    """
    if given is not None:
        return given, "given with --preset"
    if packed:
        return "paper", f"chosen from the data: {packed} is packed NTU RGB+D"
    if not sessions:
        return "paper", "the default; no data given"
    from xmkd.recordings import read_session_json

    sources = {str(s): str(read_session_json(s).get("source", "unknown")) for s in sessions}
    others = {s: src for s, src in sources.items() if src != "synthetic"}
    if not others:
        names = ", ".join(sources)
        return (
            "synthetic",
            f"chosen from the data: {names} {'is' if len(sources) == 1 else 'are'} synthetic",
        )
    first, src = next(iter(others.items()))
    return "paper", f"chosen from the data: {first} was recorded from {src}"


def announce(text: str, progress_json: str | None) -> None:
    """Print a run's start line; on stderr when stdout carries JSON-lines progress (``-``)."""
    import os
    import sys

    if os.environ.get("RANK", "0") != "0":  # under torchrun: one line, from rank 0
        return
    print(text, file=sys.stderr if progress_json == "-" else sys.stdout, flush=True)
