"""The synthetic generator (`xmkd.synth`) as a live source, for demos, tests and benchmarks.

Simulated subjects perform the generator's actions one after the other in front of one of its
NTU-like cameras; each action is a clip of the generator (`xmkd.synth.make_clip`: motion, sensor
errors of the skeleton, rendered RGB) streamed frame by frame. The next clip is generated in a
background thread while the current one plays, so a real-time paced stream stays smooth as long
as generation keeps up. Frames are rendered at ``render_width x render_height`` (cheap) and
scaled to ``width x height`` (e.g. 1280x720 like an Azure Kinect at 720p); the bodies' colour
pixel coordinates are scaled with them. Device timestamps tick one frame period per frame.

Spec: ``synthetic[:PRESET][?fps=F&frames=N&width=640&height=360&realtime=1&view=1&clips=0&seed=0
&split=all]``; PRESET is a generator preset (``tiny``: 6 classes, 32 frames at 20 fps;
``default``: 10 classes, 24 frames at 10 fps). ``fps`` and ``frames`` default to the preset's, so
the stream plays the very clips ``xmkd synth`` writes for that preset and seed. Another ``fps``
samples the same actions at that rate, for as long (``frames`` scaled to keep the duration), as a
faster camera would see them; a model trained on the preset then needs the history converted,
which ``xmkd live`` does. ``split`` plays only the subjects of one protocol split
(``test``: the subjects ``xmkd eval`` scores on; ``all``: every subject). ``clips=N`` ends the
stream after N clips (0: endless). In real time (``drops`` defaults to ``realtime``) a consumer
that falls behind loses frames the way a device drops them: the timestamps then show the gaps.
``render_width``/``render_height`` (default 320x180): the render size.

Every frame carries its clip's ordinal, its action (``Frame.label``/``Frame.truth``) and whether
it is the clip's last frame, so live predictions can be scored (``xmkd live --json``).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from capture.frames import Frame, Pacer, Source, option_bool, option_num, sequence_to_bodies
from xmkd.errors import XmkdError

#: How often a consumer waiting for the next clip looks at the stop flag (seconds).
_POLL_SECONDS = 0.05
#: The longest `close` waits for the generator thread to leave.
_CLOSE_WAIT_SECONDS = 5.0


class SyntheticSource(Source):
    """Endless (or ``clips``-long) stream of synthetic actions."""

    kind = "synthetic"

    def __init__(
        self,
        preset: str = "default",
        camera: int = 1,
        fps: float | None = None,
        width: int = 640,
        height: int = 360,
        render_width: int = 320,
        render_height: int = 180,
        realtime: bool = True,
        view: int = 1,
        clips: int = 0,
        seed: int | None = None,
        frames_per_clip: int | None = None,
        drops: bool | None = None,
        max_frames: int | None = None,
        split: str = "all",
        synth_config: Any = None,
    ):
        from xmkd.ntu.splits import SPLIT_CHOICES
        from xmkd.synth import preset as synth_preset

        super().__init__(camera=camera, max_frames=max_frames)
        self.preset = preset or "default"
        if split not in SPLIT_CHOICES:
            raise XmkdError(
                f"synthetic source: unknown split {split!r}; "
                f"choose one of {', '.join(SPLIT_CHOICES)}"
            )
        self.split = split
        # the preset's own rate unless told otherwise: its clips were generated (and models
        # trained) at that rate
        # a generator configuration given as is (tests, benchmarks) replaces the preset
        self.synth_config = synth_config
        base = synth_config if synth_config is not None else synth_preset(self.preset)
        self.fps = float(fps) if fps is not None else float(base.fps)
        self.seed = int(seed) if seed is not None else int(base.seed)
        if self.fps <= 0:
            raise XmkdError(f"synthetic source: fps must be positive, got {self.fps:g}")
        self.size = (int(width), int(height))
        self.render_size = (
            min(int(render_width), self.size[0]),
            min(int(render_height), self.size[1]),
        )
        self.realtime = realtime
        self.view = int(view)
        self.clips = int(clips)
        if frames_per_clip is None and self.fps != base.fps:
            # another rate samples the same actions more or less densely: a clip lasts as long
            # as the preset's (24 frames at 10 fps -> 72 at 30 fps), as a camera would see it
            frames_per_clip = max(8, int(round(base.frames * self.fps / base.fps)))
        self.frames_per_clip = frames_per_clip
        self.drops = realtime if drops is None else drops
        self.current_action: str | None = None  # ground truth of the clip playing (demos)
        self.current_clip: str | None = None  # its NTU-style name (SsssCcccPpppRrrrAaaa)
        self.class_names: list[str] = []
        self._prefetch: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._halt = threading.Event()

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> SyntheticSource:
        kwargs: dict[str, Any] = {
            "fps": option_num(options, "fps", None, float),
            "split": options.pop("split", "all"),
            "width": option_num(options, "width", 640),
            "height": option_num(options, "height", 360),
            "render_width": option_num(options, "render_width", 320),
            "render_height": option_num(options, "render_height", 180),
            "realtime": option_bool(options, "realtime", True),
            "view": option_num(options, "view", 1),
            "clips": option_num(options, "clips", 0),
            "seed": option_num(options, "seed", None),
        }
        if "drops" in options:
            kwargs["drops"] = option_bool(options, "drops", True)
        frames = option_num(options, "frames", None)
        if frames is not None:
            kwargs["frames_per_clip"] = frames
        kwargs.update(overrides)
        return cls(arg or "default", camera=camera, **kwargs)

    @property
    def description(self) -> str:
        w, h = self.size
        split = "" if self.split == "all" else f", {self.split} subjects"
        return (
            f"synthetic {self.preset} (view C{self.view:03d}{split}, {w}x{h} at {self.fps:g} fps)"
        )

    def device_info(self) -> dict[str, Any]:
        info = super().device_info()
        info.update(serial=f"synthetic-{self.view}", view=self.view, classes=self.class_names)
        return info

    # ---- generation -------------------------------------------------------------------------
    def _open(self) -> None:
        from xmkd.synth import action_library, plan, preset

        overrides: dict[str, Any] = {
            "fps": self.fps,
            "width": self.render_size[0],
            "height": self.render_size[1],
            "views": (self.view,),
            "seed": self.seed,
            "flow": False,
        }
        if self.frames_per_clip:
            overrides["frames"] = self.frames_per_clip
        try:
            if self.synth_config is not None:
                self.config = dataclasses.replace(self.synth_config, **overrides)
            else:
                self.config = preset(self.preset, **overrides)
        except TypeError as exc:
            raise XmkdError(f"synthetic source: bad option ({exc})") from exc
        self.specs = action_library(self.config.classes, self.config.seed)
        self.class_names = [s.name for s in self.specs]
        # interleave subjects and actions so consecutive clips differ
        jobs = plan(self.config)
        if self.split != "all":
            from xmkd.ntu.splits import protocol_split

            jobs = [j for j in jobs if protocol_split(j.name) == self.split]
            if not jobs:
                raise XmkdError(
                    f"synthetic source: preset {self.preset!r} has no subject in the {self.split} "
                    "split"
                )
        rng = np.random.default_rng(self.seed)
        self.jobs = [jobs[i] for i in rng.permutation(len(jobs))]
        # each stream gets its own queue and halt flag: a worker of an earlier stream that has
        # not left yet can never feed this one
        self._halt = threading.Event()
        self._prefetch = queue.Queue(maxsize=2)
        self._worker = threading.Thread(
            target=self._generate, args=(self._prefetch, self._halt), daemon=True, name="synthetic"
        )
        self._worker.start()

    def _generate(self, prefetch: queue.Queue, halt: threading.Event) -> None:
        from xmkd.synth import make_clip
        from xmkd.synth.render import RenderCancelled

        k = 0
        while not halt.is_set() and (self.clips == 0 or k < self.clips):
            job = self.jobs[k % len(self.jobs)]
            try:
                # a long clip (a high fps keeps the preset's duration) renders for seconds: the
                # worker leaves between frames when the source closes, and is never left running
                # native code at interpreter exit (which aborts the process)
                clip = make_clip(job, self.config, self.specs, should_stop=halt.is_set)
            except RenderCancelled:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                self._put(prefetch, halt, exc)
                return
            self._put(prefetch, halt, (job, clip))
            k += 1
        self._put(prefetch, halt, None)

    @staticmethod
    def _put(prefetch: queue.Queue, halt: threading.Event, item: Any) -> None:
        while not halt.is_set():
            try:
                prefetch.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _close(self) -> None:
        self._halt.set()
        if self._worker is not None:
            # the worker leaves within one rendered frame (or one put attempt); the bound only
            # guards against a generator step that never returns
            self._worker.join(timeout=_CLOSE_WAIT_SECONDS)
            self._worker = None

    def _halted(self) -> bool:
        """The consumer asked the stream to end (`stop`) or the source is closing."""
        return self._stop or self._halt.is_set()

    def _next_clip(self, prefetch: queue.Queue) -> Any:
        """The next generated clip, or None at the end or once halted: a clip being generated
        can take seconds, and a stop must not wait for it."""
        while not self._halted():
            try:
                return prefetch.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return None

    def _frames(self) -> Iterator[Frame]:
        import cv2

        prefetch = self._prefetch
        assert prefetch is not None
        pacer = Pacer(self.fps, self.realtime)
        period = 1e6 / self.fps
        scale_x = self.size[0] / self.render_size[0]
        scale_y = self.size[1] / self.render_size[1]
        index = 0
        ordinal = -1
        while True:
            item = self._next_clip(prefetch)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise XmkdError(f"the synthetic generator failed: {item}") from item
            job, clip = item
            ordinal += 1
            self.current_action = self.specs[job.action - 1].name
            self.current_clip = job.name
            frames_bodies = sequence_to_bodies(clip.skeleton)
            t = -1
            while t + 1 < len(frames_bodies):
                if self._halted():  # also while skipping: a late source may skip whole clips
                    return
                t += 1
                if self.drops:
                    # a consumer that fell behind loses frames like a device would
                    missed = pacer.missed()
                    index += missed
                    t += missed
                    if t >= len(frames_bodies):
                        break
                bodies = frames_bodies[t]
                image = clip.frames_bgr[t]
                if self.size != self.render_size:
                    image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
                    for body in bodies:  # pixel centres scale about the pixel grid's origin
                        body.color_px[:, 0] = (body.color_px[:, 0] + 0.5) * scale_x - 0.5
                        body.color_px[:, 1] = (body.color_px[:, 1] + 0.5) * scale_y - 0.5
                yield Frame(
                    index=index,
                    color=image,
                    depth=None,
                    bodies=bodies,
                    device_usec=int(round(index * period)),
                    host_nsec=time.perf_counter_ns(),
                    camera=self.camera,
                    clip=ordinal,
                    clip_end=t == len(frames_bodies) - 1,
                    label=job.action - 1,
                    truth=self.current_action,
                )
                index += 1
                pacer.wait()
