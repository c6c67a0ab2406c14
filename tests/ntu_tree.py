"""A small NTU RGB+D-like download for tests: ``nturgb+d_rgb/*_rgb.avi`` + ``nturgb+d_skeletons``.

:func:`build_ntu_tree` writes the two folders of the real dataset with NTU sample names, the
videos rendered by the synthetic generator from the same motion as their ``.skeleton`` files
(``xmkd.synth.make_clip``, written with the project's NTU writer and AVI writer), and the
irregularities the real download has:

- most clips at a small 16:9 size (fast), ONE at NTU's 1920x1080 (the same render, upscaled);
- a few videos a frame or two longer or shorter than their skeleton (NTU's pairs differ so);
- a video whose ``.skeleton`` file is missing;
- a video that is not a video at all (unreadable);
- a sample on the official missing-skeleton list (``S005C002P004R001A001``), both files present.

Subjects follow the paper's protocol (``xmkd.ntu.splits``): Teacher-Train, Student-Train and Test
subjects, so prepare-ntu's parts are all non-empty. The interface (:class:`NTUTree`,
:func:`build_ntu_tree`) is shared by the ingestion, export and reproduce tests: keep it stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: NTU's own folder names in the download.
RGB_DIR = "nturgb+d_rgb"
SKELETON_DIR = "nturgb+d_skeletons"
#: On xmkd/data/missing_skeletons/ntu60.txt; subject 4 is a Teacher-Train subject.
OFFICIAL_MISSING = "S005C002P004R001A001"
FULL_HD = (1920, 1080)


@dataclass
class NTUTree:
    """What :func:`build_ntu_tree` wrote (names are NTU sample names ``SsssCcccPpppRrrrAaaa``)."""

    root: Path
    rgb: Path  # <root>/nturgb+d_rgb
    skeletons: Path  # <root>/nturgb+d_skeletons
    #: every sample with a readable video and a .skeleton file, not on the official list
    paired: list[str]
    #: paired samples by protocol split (teacher_train, student_train, test)
    splits: dict[str, list[str]]
    #: the video with no .skeleton file
    no_skeleton: str
    #: the video file that is not a video
    unreadable: str
    #: the sample of the official missing-skeleton list (video and skeleton both written)
    official_missing: str
    #: the 1920x1080 clip (a Teacher-Train sample)
    full_hd: str
    #: video frames minus skeleton frames, for the pairs where they differ
    frame_difference: dict[str, int] = field(default_factory=dict)
    #: frames of each written .skeleton file
    skeleton_frames: dict[str, int] = field(default_factory=dict)
    size: tuple[int, int] = (128, 72)
    fps: float = 30.0

    def video(self, name: str) -> Path:
        return self.rgb / f"{name}_rgb.avi"

    def skeleton(self, name: str) -> Path:
        return self.skeletons / f"{name}.skeleton"


def build_ntu_tree(
    root: str | Path,
    size: tuple[int, int] = (128, 72),
    frames: int = 24,
    classes: int = 3,
    subjects_per_split: int = 2,
    full_hd: bool = True,
    seed: int = 0,
) -> NTUTree:
    """Write a small NTU-like download under ``root`` (see the module docs); returns its facts.

    ``classes`` actions (A001...) x ``subjects_per_split`` subjects of each protocol split x one
    camera view. Takes about a second at the defaults (plus ~1 s for the 1920x1080 clip).
    """
    import cv2

    from xmkd import recordings as rec
    from xmkd.ntu import write_skeleton
    from xmkd.ntu.splits import protocol_split
    from xmkd.synth.generator import ClipJob, SynthConfig, make_clip, tiny_subjects
    from xmkd.synth.motion import action_library

    root = Path(root)
    rgb, skel = root / RGB_DIR, root / SKELETON_DIR
    rgb.mkdir(parents=True, exist_ok=True)
    skel.mkdir(parents=True, exist_ok=True)
    width, height = size
    subjects = tiny_subjects(subjects_per_split)
    cfg = SynthConfig(
        classes=classes,
        subjects=subjects,
        views=(1,),
        repetitions=1,
        frames=frames,
        fps=30.0,
        width=width,
        height=height,
        seed=seed,
    )
    specs = action_library(classes, seed)
    jobs = [ClipJob(p, 1, 1, a) for p in subjects for a in range(1, classes + 1)]
    # the official-list sample: rendered like the others, named as on the list
    jobs.append(ClipJob(4, 2, 1, 1))
    names = [job.name for job in jobs[:-1]] + [OFFICIAL_MISSING]
    by_split: dict[str, list[str]] = {"teacher_train": [], "student_train": [], "test": []}
    for name in names[:-1]:
        by_split[protocol_split(name)].append(name)
    teacher, student = by_split["teacher_train"], by_split["student_train"]
    hd_name = teacher[0]
    no_skeleton, unreadable = student[-1], student[-2]
    # video frames - skeleton frames: NTU pairs differ by a few frames either way
    difference = {teacher[1]: 2, student[0]: -1}

    tree = NTUTree(
        root=root,
        rgb=rgb,
        skeletons=skel,
        paired=[],
        splits={k: [] for k in by_split},
        no_skeleton=no_skeleton,
        unreadable=unreadable,
        official_missing=OFFICIAL_MISSING,
        full_hd=hd_name if full_hd else "",
        size=(width, height),
        fps=cfg.fps,
    )
    for job, name in zip(jobs, names):
        clip = make_clip(job, cfg, specs)
        video = clip.frames_bgr
        extra = difference.get(name, 0)
        if extra > 0:
            video = np.concatenate([video, np.repeat(video[-1:], extra, axis=0)])
        elif extra < 0:
            video = video[:extra]
        if name == hd_name and full_hd:
            video = np.stack(
                [cv2.resize(f, FULL_HD, interpolation=cv2.INTER_LINEAR) for f in video]
            )
        if name == unreadable:
            tree.video(name).write_bytes(b"RIFF\x00\x00\x00\x00AVI this is not a video" * 8)
        else:
            rec.write_video(tree.video(name), video, cfg.fps)
        if name != no_skeleton:
            write_skeleton(tree.skeleton(name), clip.skeleton)
            tree.skeleton_frames[name] = clip.skeleton.num_frames
        if name in (no_skeleton, unreadable, OFFICIAL_MISSING):
            continue
        tree.paired.append(name)
        tree.splits[protocol_split(name)].append(name)
        if extra:
            tree.frame_difference[name] = extra
    return tree
