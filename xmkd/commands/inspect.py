"""``xmkd inspect FILE``: summarise a file xmkd reads (``--json``: its full content).

Dispatch is by file type through :data:`INSPECTORS`, a list of :class:`Inspector` entries tried
in order: each says whether it handles a path (``matches``), gives the text summary
(``summary`` -> lines) and the machine-readable content (``content`` -> JSON-able dict). To
support another kind (a recording session folder with ``session.json``, a ``.pt`` checkpoint),
add an entry with :func:`register_inspector` (or to the list) - nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmkd.commands import _args as A


@dataclass(frozen=True)
class Inspector:
    kind: str  # shown in messages, e.g. "NTU skeleton file"
    matches: Callable[[Path], bool]
    summary: Callable[[Path], list[str]]
    content: Callable[[Path], dict[str, Any]]


INSPECTORS: list[Inspector] = []


def register_inspector(inspector: Inspector, first: bool = False) -> None:
    """Add an inspector (``first``: before the existing ones, to take precedence)."""
    INSPECTORS.insert(0 if first else len(INSPECTORS), inspector)


def find_inspector(path: Path) -> Inspector:
    from xmkd.errors import XmkdError

    if not path.exists():
        raise XmkdError(f"{path} does not exist")
    for inspector in INSPECTORS:
        if inspector.matches(path):
            return inspector
    kinds = ", ".join(i.kind for i in INSPECTORS)
    raise XmkdError(f"cannot tell what {path} is; inspect reads {kinds}")


# --- NTU .skeleton files ----------------------------------------------------------------------

_TRACKING = {0: "not tracked", 1: "inferred", 2: "tracked"}


def _plain(value: float) -> float | int:
    """JSON value: whole numbers as ints (states, flags), the rest as floats."""
    return int(value) if float(value).is_integer() else float(value)


def _sample_fields(path: Path) -> dict[str, int] | None:
    from xmkd.ntu import SampleName, SampleNameError

    try:
        name = SampleName.from_path(path)
    except SampleNameError:
        return None
    return {
        "name": str(name),
        "setup": name.setup,
        "camera": name.camera,
        "performer": name.performer,
        "replication": name.replication,
        "action": name.action,
        "label": name.label,
    }


def skeleton_summary(path: Path) -> list[str]:
    import numpy as np

    from xmkd.ntu import read_skeleton

    seq = read_skeleton(path)
    lines = [f"{path}: NTU RGB+D skeleton file"]
    sample = _sample_fields(path)
    if sample:
        lines.append(
            f"sample {sample['name']}: setup {sample['setup']}, camera {sample['camera']}, "
            f"performer {sample['performer']}, replication {sample['replication']}, "
            f"action {sample['action']} (label {sample['label']})"
        )
    else:
        lines.append("sample name: none (the file name is not SsssCcccPpppRrrrAaaa)")
    lines.append(f"{seq.num_frames} frames, {seq.num_bodies} body entries")
    histogram = np.bincount(seq.body_counts) if seq.num_frames else np.zeros(1, dtype=int)
    per_frame = ", ".join(
        f"{n} {'body' if n == 1 else 'bodies'}: {c} frames" for n, c in enumerate(histogram) if c
    )
    lines.append(f"bodies per frame: {per_frame or 'no frames'}")
    frames = seq.body_frames
    ids = list(dict.fromkeys(seq.body_ids.tolist()))  # first-appearance order
    lines.append(f"{len(ids)} body IDs:")
    for body_id in ids:
        present = frames[seq.body_ids == np.uint64(body_id)]
        lines.append(
            f"  {body_id}: frames {present.min() + 1}-{present.max() + 1} "
            f"(present in {np.unique(present).size})"
        )
    if seq.num_bodies:
        xyz = seq.joints[:, :, :3].reshape(-1, 3)
        ranges = ", ".join(
            f"{axis} {lo:.3f}..{hi:.3f}"
            for axis, lo, hi in zip("xyz", xyz.min(axis=0), xyz.max(axis=0))
        )
        lines.append(f"joint positions (m): {ranges}")
        states = seq.joints[:, :, 11].reshape(-1)
        counts = ", ".join(
            f"{_TRACKING.get(int(s), s)} ({int(s)}): {int((states == s).sum())}"
            for s in np.unique(states)
        )
        lines.append(f"joint tracking states: {counts}")
        body_states = seq.body_info[:, 8]
        counts = ", ".join(
            f"{int(s)}: {int((body_states == s).sum())}" for s in np.unique(body_states)
        )
        lines.append(f"body trackingState: {counts}")
    return lines


def skeleton_content(path: Path) -> dict[str, Any]:
    from xmkd.ntu import BODY_INFO_FIELDS, JOINT_FIELDS, read_skeleton

    seq = read_skeleton(path)
    ids = seq.body_ids.tolist()
    infos = seq.body_info.tolist()
    joints = seq.joints.tolist()
    frames, row = [], 0
    for count in seq.body_counts.tolist():
        bodies = []
        for _ in range(count):
            body: dict[str, Any] = {"bodyID": ids[row]}
            body.update((k, _plain(v)) for k, v in zip(BODY_INFO_FIELDS, infos[row]))
            body["joints"] = [
                {k: _plain(v) for k, v in zip(JOINT_FIELDS, joint)} for joint in joints[row]
            ]
            bodies.append(body)
            row += 1
        frames.append({"bodies": bodies})
    return {
        "file": str(path),
        "kind": "ntu-skeleton",
        "sample": _sample_fields(path),
        "num_frames": seq.num_frames,
        "frames": frames,
    }


register_inspector(
    Inspector(
        kind="NTU .skeleton files",
        matches=lambda p: p.is_file() and p.suffix == ".skeleton",
        summary=skeleton_summary,
        content=skeleton_content,
    )
)


# --- command ----------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a file xmkd reads (NTU .skeleton, ...)",
        description=(
            "Print a summary of FILE: for an NTU .skeleton file the sample-name fields, frame "
            "count, bodies per frame, body IDs with the frames they span, joint position ranges "
            "and tracking-state counts. --json prints the full content instead (for .skeleton: "
            "every frame, body and joint field)."
        ),
    )
    p.add_argument("file", type=A.as_path(A.existing_path), help="the file (or folder) to inspect")
    p.add_argument("--json", action="store_true", help="print the full content as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inspector = find_inspector(args.file)
    if args.json:
        text = json.dumps(inspector.content(args.file), indent=1)
    else:
        text = "\n".join(inspector.summary(args.file))
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
