"""Live vs offline accuracy on the same clips, side by side (issue 9, section 2).

    python bench/bench_live_accuracy.py          # a fresh synthetic session, a centroid model
    python bench/bench_live_accuracy.py --session runs/demo/synth \
        --checkpoint runs/demo/students/best.pt

For each stream (a labeled synthetic stream of the session's Test subjects, and an NTU folder
holding the same Test clips as ``.skeleton`` files) and each live setting, it prints the offline
accuracy (``xmkd eval``'s path: SkeletonDataset -> StudentWindows -> the model, on exactly the
clips the stream played), the live accuracy (the prediction standing at each clip's last frame,
as ``xmkd live --json`` scores it) and the gap. Streams run as fast as possible in lockstep (each
prediction is made before the next frame), so the numbers repeat.

"former defaults" is what ``xmkd live`` did before the window came from the model: a history of
90 frames, EMA smoothing (0.5), every 5th frame only, one body chosen by motion (the datasets
choose two, of which the window keeps the first) and, for the synthetic source, clips generated
at 30 fps instead of the session's rate.

Without --checkpoint the model is a nearest-centroid classifier over the preprocessed windows
of the session's non-Test clips (fitted in a second); with one, its students. The last table
compares the Replay tab's folder evaluation (every file of a folder) with ``xmkd eval`` (Test).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.ntu_replay import NTUReplaySource  # noqa: E402
from capture.synthetic import SyntheticSource  # noqa: E402
from engines.backends import ModelSource, TorchBackend  # noqa: E402
from engines.streaming import StreamingConfig, score_stream  # noqa: E402
from xmkd.checkpoint import StreamInfo  # noqa: E402
from xmkd.config import synthetic_input_spec  # noqa: E402
from xmkd.data import SkeletonDataset  # noqa: E402
from xmkd.evaluate import predict  # noqa: E402
from xmkd.ntu import read_skeleton  # noqa: E402
from xmkd.ntu.splits import protocol_split  # noqa: E402
from xmkd.preprocess import InputSpec  # noqa: E402
from xmkd.recordings import Session  # noqa: E402
from xmkd.synth import SynthConfig, generate, preset  # noqa: E402
from xmkd.synth.generator import tiny_subjects  # noqa: E402
from xmkd.tables import print_table as table  # noqa: E402
from xmkd.train.inputs import StudentWindows  # noqa: E402


class Centroids(nn.Module):
    def __init__(self, centroids: torch.Tensor):
        super().__init__()
        self.register_buffer("centroids", centroids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -20.0 * torch.cdist(x.flatten(1).float(), self.centroids)


class FormerBodies:
    """The backend with the former live body choice (num_persons bodies, not the datasets')."""

    def __init__(self, backend: Any):
        self.backend = backend
        stream = dataclasses.replace(
            backend.source.stream_info, max_bodies=backend.source.spec.num_persons
        )
        self.source = dataclasses.replace(backend.source, stream=stream)

    def classify(self, windows: np.ndarray) -> np.ndarray:
        return self.backend.classify(windows)


def centroid_backend(session: Session) -> TorchBackend:
    spec = InputSpec.from_dict(synthetic_input_spec("stgcn"))
    frames = int(np.median([c.frames for c in session.clips]))
    stream = StreamInfo(clip_frames=frames, fps=float(session.fps))
    bare = ModelSource(class_names=list(session.class_names), spec=spec, stream=stream)
    windows: dict[int, list[np.ndarray]] = {}
    for clip in session.clips:
        if protocol_split(clip.name) != "test":
            windows.setdefault(clip.label, []).append(bare.prepare(read_skeleton(clip.skeleton)))
    centroids = torch.stack(
        [torch.from_numpy(np.mean(windows[k], axis=0)).flatten() for k in sorted(windows)]
    )
    model = Centroids(centroids).eval()
    source = dataclasses.replace(bare, students=[model])
    return TorchBackend("cpu").load(source)


def offline_accuracy(backend: Any, session: Session, names: list[str]) -> float:
    raw = SkeletonDataset(session, names=names, labeled_only=True)
    data = StudentWindows(raw, backend.source.spec, train=False)
    logits, labels, _ = predict([backend.source.ensemble()], data)
    return 100.0 * float((logits[0].argmax(axis=1) == labels).mean())


def synth_config_of(session: Session) -> SynthConfig:
    data = dict(session.info["settings"]["config"])
    data["subjects"], data["views"] = tuple(data["subjects"]), tuple(data["views"])
    return SynthConfig(**data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--session", type=Path, help="a synthetic session (default: generate one)")
    ap.add_argument("--checkpoint", type=Path, help="students checkpoint trained on it")
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--per-split", type=int, default=4, help="subjects per protocol split")
    ap.add_argument("--max-clips", type=int, default=0, help="Test clips streamed (0: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    tmp = Path(tempfile.mkdtemp(prefix="xmkd-bench-live-"))
    try:
        if args.session is None:
            cfg = preset(
                "default",
                classes=args.classes,
                subjects=tiny_subjects(args.per_split),
                views=(1,),
                repetitions=2,
                flow=False,
            )
            session = Session.open(generate(cfg, tmp / "session", workers=1).session_dir)
        else:
            session = Session.open(args.session)
            cfg = synth_config_of(session)
        if args.checkpoint is not None:
            backend = TorchBackend("cpu").load(ModelSource.from_checkpoint(args.checkpoint))
            model = f"students of {args.checkpoint}"
        else:
            backend = centroid_backend(session)
            model = "nearest-centroid windows (fitted on the non-Test clips)"
        tests = [c for c in session.clips if protocol_split(c.name) == "test"]
        count = min(len(tests), args.max_clips) if args.max_clips else len(tests)
        folder = tmp / "ntu"
        folder.mkdir()
        for clip in tests[:count]:
            shutil.copy(clip.skeleton, folder / clip.skeleton.name)
        print(f"model: {model}; stream metadata: {backend.source.stream_info}")
        print(f"{count} Test clips of {len(session.class_names)} classes at {cfg.fps:g} fps\n")

        def synthetic(fps: float | None = None, frames: int | None = None) -> SyntheticSource:
            return SyntheticSource(
                synth_config=cfg,
                realtime=False,
                split="test",
                clips=count,
                fps=fps,
                frames_per_clip=frames,
                width=64,
                height=64,
                render_width=64,
                render_height=64,
            )

        def ntu() -> NTUReplaySource:
            return NTUReplaySource(folder, realtime=False, video=False, fps=cfg.fps)

        settings = [
            ("defaults", StreamingConfig(), backend, None),
            ("smoothing ema 0.5", StreamingConfig(smoothing="ema"), backend, None),
            ("smoothing mean of 5", StreamingConfig(smoothing="mean"), backend, None),
            ("every 1", StreamingConfig(every=1), backend, None),
            ("defaults, source at 30 fps (history converted)", StreamingConfig(), backend, 30.0),
            ("every 5, no clip-end prediction", StreamingConfig(at_clip_end=False), backend, None),
            (
                "former defaults",
                StreamingConfig(history=90, smoothing="ema", at_clip_end=False),
                FormerBodies(backend),
                30.0,
            ),
        ]
        rows = []
        for stream_name, make in (("synthetic stream", synthetic), ("NTU folder", ntu)):
            for name, config, model_backend, fps in settings:
                start = time.perf_counter()
                if stream_name == "synthetic stream":
                    # the former source generated the preset's frame count at 30 fps
                    capture = make(fps, cfg.frames if name == "former defaults" else None)
                elif fps is not None and config.history is None:
                    continue  # the files hold the session's rate only
                else:
                    capture = make()
                live, played = score_stream(model_backend, capture, config)
                offline = offline_accuracy(backend, session, played)
                acc = live["live_accuracy"]
                rows.append(
                    (
                        stream_name,
                        name,
                        f"{offline:.1f}",
                        "n/a" if acc is None else f"{acc:.1f}",
                        "n/a" if acc is None else f"{acc - offline:+.1f}",
                        str(live["clips"]),
                        f"{time.perf_counter() - start:.1f}",
                    )
                )
        header = ("stream", "live setting", "offline %", "live %", "gap", "clips", "s")
        table(header, rows)

        # the Replay tab evaluates every file it lists; xmkd eval only the Test split
        import importlib.util

        if importlib.util.find_spec("PySide6") is None:
            print('\nthe Replay tab rows need the gui extra (pip install -e ".[gui]"): not run')
            return 0
        from gui.predict import ClipPredictor
        from gui.replay_tab import evaluate_files

        def predictor_of(model_backend: Any) -> ClipPredictor:
            predictor = ClipPredictor.__new__(ClipPredictor)  # the model above, no file to load
            predictor.source, predictor.backend = model_backend.source, model_backend
            predictor.class_names = list(model_backend.source.class_names)
            return predictor

        every_file = [c.skeleton for c in session.clips]
        test_files = [c.skeleton for c in tests]

        def replay(paths: list[Path], model_backend: Any = backend) -> str:
            result = evaluate_files(
                predictor_of(model_backend), paths, lambda *a: None, lambda: False
            )
            return f"{100 * result['accuracy']:.1f} ({result['count']} files)"

        test_names = [c.name for c in tests]
        print()
        table(
            ("evaluation", "accuracy %"),
            [
                ("Replay tab, every file of the session", replay(every_file)),
                ("Replay tab, the Test files", replay(test_files)),
                (
                    "Replay tab, the Test files, former body choice",
                    replay(test_files, FormerBodies(backend)),
                ),
                ("xmkd eval (Test split)", f"{offline_accuracy(backend, session, test_names):.1f}"),
            ],
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
