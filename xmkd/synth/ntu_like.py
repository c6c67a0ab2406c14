"""NTU RGB+D-like downloads at NTU's real video size, for benchmarks: ``nturgb+d_rgb/*_rgb.avi``
(1920x1080, 30 fps, MPEG-4 part 2 "XVID" as NTU's own) + ``nturgb+d_skeletons/*.skeleton``.

The clips come from the synthetic generator (:func:`xmkd.synth.make_clip`: the video rendered
from the same motion as the skeleton), rendered small and upscaled (the renderer draws at 2x;
1080p renders would take minutes per clip), named by the paper's protocol so that ``xmkd
prepare-ntu --rgb`` finds Teacher-Train and Student-Train samples. Every pair is written under a
temporary name and renamed when complete, so a folder reused after an interruption holds only
whole pairs, and :func:`write_ntu_like` skips the pairs already there.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from xmkd.errors import XmkdError
from xmkd.synth.generator import ClipJob

RGB_DIR = "nturgb+d_rgb"
SKELETON_DIR = "nturgb+d_skeletons"
FULL_HD = (1920, 1080)
#: The protocol parts the teacher reads (x-sub 60): Teacher-Train trains it, Student-Train is
#: what it labels.
VIDEO_PARTS = ("teacher_train", "student_train")
PARTIAL_DIR = ".partial"
#: the options the pairs in a folder were made with (reuse needs the same)
STAMP = "ntu_like.json"


@dataclass(frozen=True)
class NTULike:
    """What :func:`write_ntu_like` wrote (or found): the two folders and the samples per part."""

    root: Path
    rgb: Path
    skeletons: Path
    splits: dict[str, list[str]]
    #: pairs written by this call (the others were already there)
    written: int


def ntu_like_jobs(clips: int, classes: int) -> list[ClipJob]:
    """``clips`` samples spread evenly over Teacher-Train and Student-Train (x-sub 60, the
    default protocol split): per part, every action of a subject, then the next subject (then
    the next camera and repetition once the part's 10 subjects are used up)."""
    from xmkd.ntu.splits import ProtocolSplit

    split = ProtocolSplit()
    subjects = {
        "teacher_train": sorted(split.teachers("xsub60")),
        "student_train": sorted(split.students("xsub60")),
    }
    jobs: list[ClipJob] = []
    for k, part in enumerate(VIDEO_PARTS):
        wanted = (clips + 1 - k) // 2  # Teacher-Train takes the odd one
        order = [
            ClipJob(subject, view, rep, action)
            for rep in (1, 2)
            for view in (1, 2, 3)
            for subject in subjects[part]
            for action in range(1, classes + 1)
        ]
        if wanted > len(order):
            raise XmkdError(
                f"{clips} clips of {classes} classes do not fit NTU-60's names (at most "
                f"{2 * len(order)}); use more classes or fewer clips"
            )
        jobs.extend(order[:wanted])
    return jobs


def write_ntu_like(
    root: str | Path,
    clips: int,
    frames: int = 90,
    classes: int = 8,
    size: tuple[int, int] = FULL_HD,
    render_size: tuple[int, int] = (320, 180),
    codec: str = "XVID",
    workers: int = 1,
    seed: int = 0,
) -> NTULike:
    """Write (or complete) an NTU-like download of ``clips`` pairs under ``root``.

    ``size``: the stored videos' frame size; ``render_size``: the size the generator draws at
    before upscaling; ``codec``: the AVI's FourCC (NTU's videos are MPEG-4 part 2, "XVID").
    """
    from xmkd.ntu.splits import protocol_split

    root = Path(root)
    rgb, skeletons = root / RGB_DIR, root / SKELETON_DIR
    rgb.mkdir(parents=True, exist_ok=True)
    skeletons.mkdir(parents=True, exist_ok=True)
    (root / PARTIAL_DIR).mkdir(exist_ok=True)
    jobs = ntu_like_jobs(clips, classes)
    _check_stamp(root, {
        "frames": frames, "classes": classes, "size": list(size),
        "render_size": list(render_size), "codec": codec, "seed": seed,
    })  # fmt: skip
    todo = [
        j
        for j in jobs
        if not (rgb / f"{j.name}_rgb.avi").is_file()
        or not (skeletons / f"{j.name}.skeleton").is_file()
    ]
    options = (str(rgb), str(skeletons), frames, classes, size, render_size, codec, seed)
    if todo:
        _check_codec(rgb, codec, size)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            list(pool.map(_write_pair, todo, [options] * len(todo)))
    else:
        for job in todo:
            _write_pair(job, options)
    splits: dict[str, list[str]] = {part: [] for part in VIDEO_PARTS}
    for job in jobs:
        splits[str(protocol_split(job.name))].append(job.name)
    return NTULike(root, rgb, skeletons, splits, len(todo))


def _check_stamp(root: Path, made_with: dict) -> None:
    """Pairs already in ``root`` are reused only when made with the same options."""
    import json

    stamp = root / STAMP
    if stamp.is_file():
        try:
            before = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        if before != made_with:
            raise XmkdError(
                f"{root} holds NTU-like clips made with other options ({stamp}: {before}, now "
                f"{made_with}); use another folder or delete it"
            )
    else:
        stamp.write_text(json.dumps(made_with), encoding="utf-8")


def _check_codec(folder: Path, codec: str, size: tuple[int, int]) -> None:
    import cv2

    probe = folder.parent / PARTIAL_DIR / "codec_probe.avi"
    writer = cv2.VideoWriter(str(probe), cv2.VideoWriter_fourcc(*codec), 30.0, size)
    ok = writer.isOpened()
    writer.release()
    probe.unlink(missing_ok=True)
    if not ok:
        raise XmkdError(f"this OpenCV cannot write {codec!r} AVIs; choose another codec (MJPG)")


def _write_pair(job: ClipJob, options: tuple) -> str:
    """Render one clip, write its upscaled video and its .skeleton, each renamed when whole."""
    import cv2

    from xmkd.ntu import write_skeleton
    from xmkd.synth.generator import SynthConfig, make_clip
    from xmkd.synth.motion import action_library

    rgb, skeletons, frames, classes, size, render_size, codec, seed = options
    cv2.setNumThreads(1)  # one clip per process
    cfg = SynthConfig(
        classes=classes,
        subjects=(job.subject,),
        views=(job.view,),
        repetitions=job.rep,
        frames=frames,
        fps=30.0,
        width=render_size[0],
        height=render_size[1],
        seed=seed,
    )
    clip = make_clip(job, cfg, action_library(classes, seed))
    video = Path(rgb) / f"{job.name}_rgb.avi"
    # written beside the two folders, not in them: prepare-ntu never sees a partial file
    partial = Path(rgb).parent / PARTIAL_DIR / video.name
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*codec), 30.0, tuple(size))
    try:
        for frame in clip.frames_bgr:
            writer.write(cv2.resize(frame, tuple(size), interpolation=cv2.INTER_LINEAR))
    finally:
        writer.release()
    os.replace(partial, video)
    skeleton = Path(skeletons) / f"{job.name}.skeleton"
    partial = partial.with_name(skeleton.name)
    write_skeleton(partial, clip.skeleton)
    os.replace(partial, skeleton)
    return job.name
