"""``xmkd inspect FILE``: summarise a file xmkd reads (``--json``: its full content).

Dispatch is by file type through :data:`INSPECTORS`, a list of :class:`Inspector` entries tried
in order: each says whether it handles a path (``matches``), gives the text summary
(``summary`` -> lines) and the machine-readable content (``content`` -> JSON-able dict). Kinds:
NTU ``.skeleton`` files, recording session folders (``session.json``), packed NTU folders
(``manifest.json``), ``.pt`` checkpoints and teacher-label caches (read with
``weights_only=True``: never unpickled) and ``.onnx`` models (checked with onnx's checker). To
support another kind, add an entry with :func:`register_inspector` - nothing else changes.
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


# --- recording sessions -----------------------------------------------------------------------


def _is_session(path: Path) -> bool:
    from xmkd.recordings import SESSION_FILE

    return path.is_dir() and (path / SESSION_FILE).is_file()


def session_content(path: Path) -> dict[str, Any]:
    """What a session holds: clips, frames, duration, cameras, bodies, labels, video/flow."""
    import numpy as np

    from xmkd.errors import XmkdError
    from xmkd.ntu import read_skeleton
    from xmkd.ntu.splits import protocol_split
    from xmkd.recordings import PARTIAL_DIR, Session

    session = Session.open(path, verify=False)  # inspect reports problems instead of stopping
    info = session.info
    classes = session.class_names
    fps = session.fps
    labels: dict[str, int] = {}
    splits: dict[str, int] = {}
    bodies: dict[int, int] = {}
    problems: list[str] = []
    video = flow = timestamps = 0
    for clip in session.clips:
        action = clip.sample.action
        if action == 0:
            label = "unlabeled (A000)"
        elif classes and action <= len(classes):
            label = classes[action - 1]
        else:
            label = f"A{action:03d}"
        labels[label] = labels.get(label, 0) + 1
        split = protocol_split(clip.name) or "outside xsub60"
        splits[split] = splits.get(split, 0) + 1
        video += clip.has_video
        flow += clip.has_flow
        timestamps += clip.timestamps.is_file()
        try:
            seq = read_skeleton(clip.skeleton)
        except OSError as exc:
            problems.append(f"{clip.name}: {exc.strerror or exc} ({clip.skeleton})")
            continue
        except XmkdError as exc:  # a FormatError names the file and the line
            problems.append(str(exc))
            continue
        most = int(seq.body_counts.max()) if seq.num_frames else 0
        bodies[most] = bodies.get(most, 0) + 1
        if seq.num_frames != clip.frames:
            problems.append(
                f"{clip.name}: session.json lists {clip.frames} frames, the .skeleton has "
                f"{seq.num_frames}"
            )
    frames = [c.frames for c in session.clips]
    clip_fps = [c.fps or fps for c in session.clips]
    seconds = sum(f / r for f, r in zip(frames, clip_fps) if r)
    partial = path / PARTIAL_DIR
    pending = sorted(p.name for p in partial.iterdir() if p.is_dir()) if partial.is_dir() else []
    return {
        "file": str(path),
        "kind": "session",
        "source": info.get("source"),
        "created": info.get("created"),
        "fps": fps,
        "cameras": [d.get("camera") for d in info.get("devices", [])],
        "clips": len(session.clips),
        "frames": int(sum(frames)),
        "duration_s": round(seconds, 2),
        "clip_frames": (
            {"min": min(frames), "median": float(np.median(frames)), "max": max(frames)}
            if frames
            else None
        ),
        "classes": classes,
        "labels": dict(sorted(labels.items())),
        "splits": dict(sorted(splits.items())),
        "bodies_per_clip": {str(k): v for k, v in sorted(bodies.items())},
        "with_video": video,
        "with_flow": flow,
        "with_timestamps": timestamps,
        "dropped_frames": info.get("dropped_frames") or {},
        "unrecovered_partial": pending,
        "problems": problems,
    }


def session_summary(path: Path) -> list[str]:
    c = session_content(path)
    n = c["clips"]
    lines = [f"{path}: xmkd recording session (source {c['source']}, created {c['created']})"]
    cams = ", ".join(str(x) for x in c["cameras"]) or "none listed"
    fps = f"{c['fps']:g} fps" if c["fps"] else "fps unknown"
    lines.append(
        f"{n} clips, {c['frames']} frames, {c['duration_s']:.1f} s at {fps}; cameras {cams}"
    )
    if c["clip_frames"]:
        f = c["clip_frames"]
        lines.append(f"frames per clip: {f['min']}-{f['max']} (median {f['median']:g})")
    per = ", ".join(
        f"{k} {'body' if k == '1' else 'bodies'}: {v} clips"
        for k, v in c["bodies_per_clip"].items()
    )
    lines.append(f"most bodies in one frame: {per or 'no readable skeleton'}")
    if c["classes"]:
        lines.append(f"{len(c['classes'])} classes: {', '.join(c['classes'])}")
    lines.append("clips per label: " + ", ".join(f"{k} {v}" for k, v in c["labels"].items()))
    lines.append("clips per split: " + ", ".join(f"{k} {v}" for k, v in c["splits"].items()))
    lines.append(
        f"video for {c['with_video']} of {n} clips, optical flow for {c['with_flow']}, "
        f"timestamps for {c['with_timestamps']}"
    )
    dropped = sum(int(v) for v in c["dropped_frames"].values() if isinstance(v, int | float))
    if dropped:
        lines.append(f"dropped frames: {dropped}")
    if c["unrecovered_partial"]:
        lines.append(
            f"partial/ holds {len(c['unrecovered_partial'])} unfinished clip(s): "
            f"run xmkd recover {path}"
        )
    if c["problems"]:
        lines.append(f"{len(c['problems'])} problem(s):")
        lines += [f"  {p}" for p in c["problems"][:10]]
    return lines


register_inspector(
    Inspector(
        kind="recording session folders",
        matches=_is_session,
        summary=session_summary,
        content=session_content,
    )
)


# --- packed NTU RGB+D folders -----------------------------------------------------------------


def _is_packed(path: Path) -> bool:
    from xmkd.ntu.pack import MANIFEST

    return path.is_dir() and (path / MANIFEST).is_file()


def packed_content(path: Path) -> dict[str, Any]:
    import numpy as np

    from xmkd.errors import FormatError
    from xmkd.ntu.pack import MANIFEST, PackedNTU

    try:
        info = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise FormatError(path / MANIFEST, f"not a readable manifest ({exc})") from exc
    parts: dict[str, Any] = {}
    for part in info.get("parts", {}):
        packed = PackedNTU(path, part)  # checks the format and the arrays against the manifest
        counts = np.bincount(packed.labels, minlength=len(info.get("class_names", [])))
        parts[part] = {
            "samples": len(packed),
            "shape": list(packed.data.shape),
            "frames": {
                "min": int(packed.frames.min()) if len(packed) else 0,
                "max": int(packed.frames.max()) if len(packed) else 0,
            },
            "classes_present": int((counts > 0).sum()),
        }
    return {
        "file": str(path),
        "kind": "packed-ntu",
        "benchmark": info.get("benchmark"),
        "selection": info.get("selection"),
        "max_frames": info.get("max_frames"),
        "max_bodies": info.get("max_bodies"),
        "classes": len(info.get("class_names", [])),
        "parts": parts,
        "source": info.get("source"),
        "skipped_missing": len(info.get("skipped_missing") or []),
        "malformed": len(info.get("malformed") or []),
        "duplicates": len(info.get("duplicates") or []),
        "teacher_subjects": info.get("teacher_subjects"),
    }


def packed_summary(path: Path) -> list[str]:
    c = packed_content(path)
    lines = [
        f"{path}: packed NTU RGB+D ({c['benchmark']}, body selection {c['selection']}, "
        f"{c['classes']} classes, windows of {c['max_frames']} frames x {c['max_bodies']} bodies)"
    ]
    for part, p in c["parts"].items():
        lines.append(
            f"  {part}: {p['samples']} samples, {p['classes_present']} classes present, "
            f"{p['frames']['min']}-{p['frames']['max']} frames per file"
        )
    lines.append(
        f"from {c['source']}: {c['skipped_missing']} skipped (missing-skeleton lists), "
        f"{c['malformed']} malformed, {c['duplicates']} duplicates"
    )
    return lines


register_inspector(
    Inspector(
        kind="packed NTU folders",
        matches=_is_packed,
        summary=packed_summary,
        content=packed_content,
    )
)


# --- checkpoints and teacher-label caches (.pt) -----------------------------------------------


def _load_pt(path: Path) -> dict[str, Any]:
    """The file's plain data, read with ``weights_only=True`` (never unpickles objects)."""
    from xmkd.checkpoint import FORMAT, safe_torch_load
    from xmkd.errors import CheckpointError
    from xmkd.train.label import FORMAT as LABELS

    data = safe_torch_load(path)
    if not isinstance(data, dict) or data.get("format") not in (FORMAT, LABELS):
        raise CheckpointError(
            f"{path}: is neither an xmkd checkpoint nor a teacher-label file "
            f"(format {str(data.get('format') if isinstance(data, dict) else None)[:60]!r})"
        )
    return data


def _digest_status(entry: dict[str, Any]) -> str:
    import torch

    from xmkd.checkpoint import weights_digest

    state = entry["state_dict"]
    stored = entry.get("digest")
    if stored is None:
        status = "no digest (written before digests)"
    elif stored == weights_digest(state):
        status = "ok"
    else:
        status = "MISMATCH: the weights changed since they were saved (corrupt file)"
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        status += f"; non-finite values in {len(bad)} tensor(s), e.g. {bad[0]}"
    return status


def checkpoint_content(path: Path) -> dict[str, Any]:
    import math

    from xmkd.checkpoint import _validate

    data = _load_pt(path)
    if data.get("format") != "xmkd-checkpoint":
        return labels_content(path)
    _validate(data, path)  # the checkpoint module's own field checks: one sentence per problem
    models = []
    for entry in data["models"]:
        state = entry["state_dict"]
        models.append(
            {
                "arch": entry["arch"],
                "kwargs": entry.get("kwargs", {}),
                "parameters": int(sum(t.numel() for t in state.values() if t.is_floating_point())),
                "digest": _digest_status(entry),
            }
        )
    config = data.get("config") or {}
    train = data.get("train") or {}
    extra = data.get("extra") or {}
    val = extra.get("val")
    return {
        "file": str(path),
        "kind": f"{data['kind']}-checkpoint",
        "version": data.get("version"),
        "classes": list(data["class_names"]),
        "models": models,
        "ensemble": data.get("ensemble"),
        "input_spec": data.get("input_spec"),
        "modality": extra.get("modality"),
        "epoch": extra.get("epoch", train.get("epoch")),
        "epochs": config.get("epochs"),
        "supervision": config.get("supervision"),
        "validation": (
            {k: v for k, v in val.items() if isinstance(v, float) and not math.isnan(v)}
            if isinstance(val, dict)
            else val
        ),
        "student_train_accuracy": extra.get("student_train_accuracy"),
        "resumable": bool(train),
        "best": train.get("best"),
        "best_epoch": train.get("best_epoch"),
        "size_bytes": path.stat().st_size,
    }


def labels_content(path: Path) -> dict[str, Any]:
    """A teacher-label cache (``xmkd label``): how many clips, classes, how right the teacher is."""
    from xmkd.train.label import load_labels

    cache = load_labels(path)  # checks shapes and names; plain data only
    return {
        "file": str(path),
        "kind": "teacher-labels",
        "clips": len(cache),
        "classes": list(cache.class_names),
        "modality": cache.modality,
        "teacher": cache.teacher,
        "clips_with_ground_truth": int((cache.targets >= 0).sum()),
        "teacher_accuracy": cache.accuracy(),
        "no_label": len(cache.no_label),
        "teacher_kind": cache.extra.get("teacher_kind"),
        "teacher_classes": len(cache.extra.get("teacher_classes") or []) or None,
        "class_map": cache.extra.get("class_map"),
        "min_confidence": cache.extra.get("min_confidence"),
        "background": cache.extra.get("background"),
    }


def checkpoint_summary(path: Path) -> list[str]:
    c = checkpoint_content(path)
    if c["kind"] == "teacher-labels":
        acc = c["teacher_accuracy"]
        right = f"teacher right on {100 * acc:.2f}% of them" if acc is not None else "no truth"
        classes = c["classes"]
        shown = ", ".join(classes[:10]) + (f", ... ({len(classes)})" if len(classes) > 10 else "")
        lines = [
            f"{path}: teacher-label cache (xmkd label) from {c['teacher']} ({c['modality']})",
            f"{c['clips']} clips, {len(classes)} classes; {c['clips_with_ground_truth']} "
            f"clips carry a ground-truth action ({right})",
            f"classes: {shown}",
        ]
        if c["teacher_kind"] in ("xclip", "clip"):
            lines.append("open-vocabulary teacher: its classes are the actions it was prompted for")
        elif c["class_map"]:
            lines.append(
                f"target actions through a class map from the teacher's {c['teacher_classes']} "
                "classes"
            )
        if c["min_confidence"] or c["background"]:
            weak = "background" if c["background"] else "no label (left out of distill)"
            lines.append(f"clips below confidence {c['min_confidence']:g}: {weak}")
        if c["no_label"]:
            lines.append(f"{c['no_label']} of {c['clips']} clips have no label")
        return lines
    archs = ", ".join(f"{m['arch']} {m['kwargs']}" for m in c["models"])
    classes = c["classes"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)})" if len(classes) > 10 else "")
    spec = c["input_spec"] or {}
    spec_text = ", ".join(f"{k} {v}" for k, v in spec.items())
    lines = [
        f"{path}: xmkd {c['kind'].replace('-', ' ')} (version {c['version']}, "
        f"{c['size_bytes'] / 1e6:.1f} MB)",
        f"{len(c['models'])} model(s): {archs}"
        + (f"; ensemble {c['ensemble']}" if c["kind"] == "students-checkpoint" else ""),
        f"{len(classes)} classes: {shown}",
        f"input: {spec_text or 'not recorded'}",
    ]
    if c["modality"]:
        lines.append(f"modality: {c['modality']}")
    trained = f"epoch {c['epoch']}" + (f" of {c['epochs']}" if c["epochs"] else "")
    if c["supervision"]:
        trained += f", supervision {c['supervision']}"
    state = "resumable (training state inside)" if c["resumable"] else "weights only"
    lines.append(f"trained: {trained}; {state}")
    if isinstance(c["validation"], dict) and c["validation"]:
        lines.append(
            "validation top-1: "
            + ", ".join(f"{k} {100 * v:.2f}%" for k, v in c["validation"].items())
        )
    if c["student_train_accuracy"] is not None:
        lines.append(f"accuracy on Student-Train: {100 * c['student_train_accuracy']:.2f}%")
    if c["best"] is not None:
        lines.append(f"best validation so far: {100 * c['best']:.2f}% (epoch {c['best_epoch']})")
    for i, m in enumerate(c["models"]):
        lines.append(f"model {i}: {m['parameters']:,} parameters, weights digest {m['digest']}")
    return lines


register_inspector(
    Inspector(
        kind="checkpoints and teacher-label files (.pt)",
        matches=lambda p: p.is_file() and p.suffix == ".pt",
        summary=checkpoint_summary,
        content=checkpoint_content,
    )
)


# --- exported ONNX models ---------------------------------------------------------------------


def onnx_content(path: Path) -> dict[str, Any]:
    from xmkd.errors import FormatError, require

    onnx = require("onnx", "onnx", "Inspecting an ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto)
    except Exception as exc:  # protobuf's DecodeError, the checker's ValidationError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FormatError(path, f"is not a valid ONNX model ({first[:200]})") from exc

    def shape(value: Any) -> list[int | str]:
        dims = value.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]

    metadata: dict[str, Any] = {}
    for prop in proto.metadata_props:
        if prop.key == "xmkd":
            try:
                metadata = json.loads(prop.value)
            except ValueError:
                metadata = {"unreadable": prop.value[:200]}
    return {
        "file": str(path),
        "kind": "onnx",
        "size_bytes": path.stat().st_size,
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [{"name": i.name, "shape": shape(i)} for i in proto.graph.input],
        "outputs": [{"name": o.name, "shape": shape(o)} for o in proto.graph.output],
        "nodes": len(proto.graph.node),
        "xmkd": metadata,
    }


def onnx_summary(path: Path) -> list[str]:
    c = onnx_content(path)
    opsets = ", ".join(f"{k} {v}" for k, v in c["opset"].items())
    lines = [
        f"{path}: ONNX model ({c['size_bytes'] / 1e6:.2f} MB, opset {opsets}, "
        f"{c['nodes']} nodes, {c['producer']})"
    ]
    for role in ("inputs", "outputs"):
        for t in c[role]:
            lines.append(f"{role[:-1]} {t['name']}: {t['shape']}")
    meta = c["xmkd"]
    if not meta:
        lines.append("no xmkd metadata (not written by xmkd export: live cannot use it)")
        return lines
    classes = meta.get("class_names") or []
    lines.append(
        f"xmkd: {meta.get('students', '?')} student(s) {meta.get('archs', '')}, ensemble "
        f"{meta.get('ensemble')}, {meta.get('precision')}, window {meta.get('window')} "
        f"({'dynamic' if meta.get('dynamic_window') else 'fixed'}), {len(classes)} classes"
    )
    if meta.get("checkpoint"):
        lines.append(f"exported from {meta['checkpoint']}")
    parity = meta.get("parity")
    if isinstance(parity, dict):

        def diff(key: str) -> str:
            value = parity.get(key)
            return f"{value:.2e}" if isinstance(value, int | float) else "not checked"

        lines.append(
            f"parity with PyTorch ({parity.get('precision')}): max |diff| random windows "
            f"{diff('random_max_abs_diff')}, real windows {diff('real_max_abs_diff')} "
            f"(tolerance {parity.get('tolerance')})"
        )
    else:
        lines.append("parity: not recorded (not checked after export)")
    return lines


register_inspector(
    Inspector(
        kind=".onnx models",
        matches=lambda p: p.is_file() and p.suffix == ".onnx",
        summary=onnx_summary,
        content=onnx_content,
    )
)


# --- command ----------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarise a file or folder xmkd reads (.skeleton, session, checkpoint, .onnx, ...)",
        description=(
            "Print a summary of FILE. An NTU .skeleton file: the sample-name fields, frame "
            "count, bodies per frame, body IDs with the frames they span, joint position ranges "
            "and tracking-state counts. A recording session folder: clips, frames, duration, "
            "fps, cameras, bodies, labels, splits, video/flow/timestamps presence, unrecovered "
            "clips. A packed NTU folder (xmkd prepare-ntu): parts, samples, classes. A .pt "
            "checkpoint: kind, students and architectures, classes, input spec, epochs, "
            "validation metrics, weights digest status; a teacher-label cache (xmkd label): "
            "clips, classes, teacher accuracy. An .onnx model: inputs/outputs, opset, size, "
            "xmkd metadata and parity. --json prints it as JSON (for .skeleton: every frame, "
            "body and joint field)."
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
