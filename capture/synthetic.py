"""The synthetic generator (`xmkd.synth`) as a live source, for demos, tests and benchmarks.

Simulated subjects perform the generator's actions one after the other in front of one of its
NTU-like cameras; each action is a clip of the generator (`xmkd.synth.make_clip`: motion, sensor
errors of the skeleton, rendered RGB) streamed frame by frame. The next clip is generated in a
background thread while the current one plays, so a real-time paced stream stays smooth as long
as generation keeps up. Frames are rendered at ``render_width x render_height`` (cheap) and
scaled to ``width x height`` (e.g. 1280x720 like an Azure Kinect at 720p); the bodies' colour
pixel coordinates are scaled with them. Device timestamps tick one frame period per frame.

Spec: ``synthetic[:PRESET][?fps=30&width=640&height=360&realtime=1&view=1&clips=0&seed=0]``;
PRESET is a generator preset (``tiny``: 6 classes; ``default``: 10). ``clips=N`` ends the stream
after N clips (0: endless). In real time (``drops`` defaults to ``realtime``) a consumer that
falls behind loses frames the way a device drops them: the timestamps then show the gaps.
``render_width``/``render_height`` (default 320x180): the render size.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from capture.source import Frame, Pacer, Source, option_bool, option_num, sequence_to_bodies
from xmkd.errors import XmkdError


class SyntheticSource(Source):
    """Endless (or ``clips``-long) stream of synthetic actions."""

    kind = "synthetic"

    def __init__(
        self,
        preset: str = "default",
        camera: int = 1,
        fps: float = 30.0,
        width: int = 640,
        height: int = 360,
        render_width: int = 320,
        render_height: int = 180,
        realtime: bool = True,
        view: int = 1,
        clips: int = 0,
        seed: int = 0,
        frames_per_clip: int | None = None,
        drops: bool | None = None,
        max_frames: int | None = None,
    ):
        super().__init__(camera=camera, max_frames=max_frames)
        self.preset = preset or "default"
        self.fps = float(fps)
        self.size = (int(width), int(height))
        self.render_size = (
            min(int(render_width), self.size[0]),
            min(int(render_height), self.size[1]),
        )
        self.realtime = realtime
        self.view = int(view)
        self.clips = int(clips)
        self.seed = int(seed)
        self.frames_per_clip = frames_per_clip
        self.drops = realtime if drops is None else drops
        self.current_action: str | None = None  # ground truth of the clip playing (demos)
        self.class_names: list[str] = []
        self._prefetch: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._halt = threading.Event()

    @classmethod
    def from_options(
        cls, arg: str, options: dict[str, str], camera: int, **overrides: Any
    ) -> SyntheticSource:
        kwargs: dict[str, Any] = {
            "fps": option_num(options, "fps", 30.0, float),
            "width": option_num(options, "width", 640),
            "height": option_num(options, "height", 360),
            "render_width": option_num(options, "render_width", 320),
            "render_height": option_num(options, "render_height", 180),
            "realtime": option_bool(options, "realtime", True),
            "view": option_num(options, "view", 1),
            "clips": option_num(options, "clips", 0),
            "seed": option_num(options, "seed", 0),
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
        return f"synthetic {self.preset} (view C{self.view:03d}, {w}x{h} at {self.fps:g} fps)"

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
            self.config = preset(self.preset, **overrides)
        except TypeError as exc:
            raise XmkdError(f"synthetic source: bad option ({exc})") from exc
        self.specs = action_library(self.config.classes, self.config.seed)
        self.class_names = [s.name for s in self.specs]
        # interleave subjects and actions so consecutive clips differ
        jobs = plan(self.config)
        rng = np.random.default_rng(self.seed)
        self.jobs = [jobs[i] for i in rng.permutation(len(jobs))]
        self._halt.clear()
        self._prefetch = queue.Queue(maxsize=2)
        self._worker = threading.Thread(target=self._generate, daemon=True, name="synthetic")
        self._worker.start()

    def _generate(self) -> None:
        from xmkd.synth import make_clip

        assert self._prefetch is not None
        k = 0
        while not self._halt.is_set() and (self.clips == 0 or k < self.clips):
            job = self.jobs[k % len(self.jobs)]
            try:
                clip = make_clip(job, self.config, self.specs)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                self._put(exc)
                return
            self._put((job, clip))
            k += 1
        self._put(None)

    def _put(self, item: Any) -> None:
        assert self._prefetch is not None
        while not self._halt.is_set():
            try:
                self._prefetch.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _close(self) -> None:
        self._halt.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None

    def _frames(self) -> Iterator[Frame]:
        import cv2

        assert self._prefetch is not None
        pacer = Pacer(self.fps, self.realtime)
        period = 1e6 / self.fps
        scale_x = self.size[0] / self.render_size[0]
        scale_y = self.size[1] / self.render_size[1]
        index = 0
        while True:
            item = self._prefetch.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise XmkdError(f"the synthetic generator failed: {item}") from item
            job, clip = item
            self.current_action = self.specs[job.action - 1].name
            frames_bodies = sequence_to_bodies(clip.skeleton)
            t = -1
            while t + 1 < len(frames_bodies):
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
                )
                index += 1
                pacer.wait()
