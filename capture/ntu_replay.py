"""NTU RGB+D replay: plays ``.skeleton`` files (and their ``_rgb.avi`` when present) as a source.

``ntu:PATH`` with PATH a ``.skeleton`` file or a folder (its ``.skeleton`` files in name order
play as a playlist, one after the other), or a session folder (``xmkd record`` / ``xmkd synth``:
its ``skeletons/`` play, at the session's frame rate unless ``fps=`` says otherwise). The paired
video ``<name>_rgb.avi`` is looked up next to the file and in the sibling folders of its folder
(NTU's ``nturgb+d_skeletons/`` + ``nturgb+d_rgb/``, or a session's ``skeletons/`` + ``rgb/``).
Frames are paced at 30 fps (NTU's rate) unless ``realtime=0``; device timestamps count frame
periods continuously across the playlist, so no frame is reported as dropped between files.

Options: ``realtime=0|1`` (default 1), ``video=0|1`` (default 1), ``loop=0|1`` (default 0),
``fps=N`` (default 30).

Each file is one clip: its frames carry the clip's ordinal in the playlist, its action from the
file name (``A001`` -> label 0, the convention ``xmkd eval`` and the Replay tab score against; none
for ``A000`` or a name that is not an NTU sample name) and whether it is the clip's last frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capture.frames import Frame, Pacer, Source, option_bool, option_num, sequence_to_bodies
from xmkd.errors import XmkdError
from xmkd.recordings import SKELETON_DIR

NTU_FPS = 30.0


def find_video(skeleton: Path) -> Path | None:
    """The ``<name>_rgb.avi`` paired with a ``.skeleton`` file, if there is one."""
    name = (
        skeleton.name[: -len(".skeleton")] if skeleton.name.endswith(".skeleton") else skeleton.stem
    )
    video = f"{name}_rgb.avi"
    candidates = [skeleton.parent / video]
    if skeleton.parent.parent.is_dir():
        candidates += sorted(d / video for d in skeleton.parent.parent.iterdir() if d.is_dir())
    return next((c for c in candidates if c.is_file()), None)


def action_of(path: Path) -> tuple[int | None, str | None]:
    """(0-based label, "Aaaa") of the action in an NTU file name; (None, None) for ``A000`` or a
    name that is not an NTU sample name."""
    from xmkd.ntu import SampleName, SampleNameError

    try:
        name = SampleName.from_path(path)
    except SampleNameError:
        return None, None
    if name.label < 0:
        return None, None
    return name.label, f"A{name.action:03d}"


class NTUReplaySource(Source):
    """Replays NTU ``.skeleton`` files (with their videos when found)."""

    kind = "ntu-replay"

    def __init__(
        self,
        path: str | Path,
        camera: int = 1,
        realtime: bool = True,
        video: bool = True,
        loop: bool = False,
        fps: float = NTU_FPS,
        max_frames: int | None = None,
        fps_given: bool = True,
    ):
        super().__init__(camera=camera, max_frames=max_frames)
        #: False: a session folder's own frame rate replaces ``fps`` (NTU's 30 otherwise)
        self.fps_given = fps_given
        self.path = Path(path)
        self.realtime = realtime
        self.use_video = video
        self.loop = loop
        self.fps = float(fps)
        self.files: list[Path] = []
        self.current: Path | None = None  # the file being played (the GUI shows it)

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> NTUReplaySource:
        kwargs: dict[str, Any] = {
            "fps_given": "fps" in options,
            "realtime": option_bool(options, "realtime", True),
            "video": option_bool(options, "video", True),
            "loop": option_bool(options, "loop", False),
            "fps": option_num(options, "fps", NTU_FPS, float),
        }
        kwargs.update(overrides)
        return cls(arg, camera=camera, **kwargs)

    @property
    def description(self) -> str:
        return f"NTU replay of {self.path}"

    def _open(self) -> None:
        from xmkd.ntu.skeleton_file import check_skeleton_file

        if self.path.is_dir():
            self.files = sorted(self.path.glob("*.skeleton"))
            if not self.files:  # a session folder (xmkd record / xmkd synth): its skeletons/
                self.files = sorted((self.path / SKELETON_DIR).glob("*.skeleton"))
                if self.files and not self.fps_given:
                    self.fps = self._session_fps() or self.fps
            if not self.files:
                raise XmkdError(
                    f"{self.path} holds no .skeleton files to replay (nor a session's "
                    f"{SKELETON_DIR}/ folder)"
                )
        elif self.path.exists():
            self.files = [self.path]
        else:
            raise XmkdError(f"{self.path}: no such .skeleton file or folder")
        for path in self.files:  # a FIFO would hang the replay, a device fill the memory
            check_skeleton_file(path)

    def _session_fps(self) -> float | None:
        from xmkd.recordings import Session

        try:
            fps = Session.open(self.path, verify=False).fps
        except XmkdError:
            return None
        return float(fps) if fps else None

    def _frames(self) -> Iterator[Frame]:
        from xmkd.ntu import read_skeleton

        pacer = Pacer(self.fps, self.realtime)
        period_usec = 1e6 / self.fps
        index = 0
        ordinal = 0
        while True:
            for path in self.files:
                self.current = path
                seq = read_skeleton(path)  # FormatError names the file and line
                video = find_video(path) if self.use_video else None
                label, truth = action_of(path)
                per_frame = sequence_to_bodies(seq)
                last = len(per_frame) - 1
                for t, (color, bodies) in enumerate(zip(self._video_frames(video), per_frame)):
                    yield Frame(
                        index=index,
                        color=color,
                        depth=None,
                        bodies=bodies,
                        device_usec=int(round(index * period_usec)),
                        host_nsec=time.perf_counter_ns(),
                        camera=self.camera,
                        clip=ordinal,
                        clip_end=t == last,
                        label=label,
                        truth=truth,
                    )
                    index += 1
                    pacer.wait()
                ordinal += 1
            if not self.loop:
                return

    @staticmethod
    def _video_frames(video: Path | None) -> Iterator[Any]:
        """Decoded frames of the paired video, then None forever (skeleton files and videos
        of NTU sometimes differ by a few frames; the skeleton decides the length)."""
        if video is not None:
            import cv2

            cap = cv2.VideoCapture(str(video))
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    yield frame
            finally:
                cap.release()
        while True:
            yield None
