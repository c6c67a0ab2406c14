"""Streaming classifier: live capture frames in, smoothed top-k action predictions out.

Frames from any capture source (``capture.source.Frame``: bodies with tracking ids and NTU-25
joints in metres, timestamps) go into ring buffers, one per tracked body id, of the last
``history`` frames. Every ``every`` frames a snapshot of the buffers is handed to a worker
thread, which builds the window with exactly the offline code:
``capture.source.bodies_to_sequence`` -> ``engines.backends.prepare_clip``
(``xmkd.ntu.to_model_array`` with the training data's body rule, then
``xmkd.preprocess.prepare_window``) -> backend. So a clip streamed in gives the same
probabilities as evaluating the clip offline.

The window must also span what the students were trained on: the model's stream metadata
(``xmkd.checkpoint.StreamInfo``: the training clips' median duration in frames and their frame
rate, the body selection) sets the defaults: ``history`` = the training clip duration converted
to the source's frame rate (24 frames at 10 fps stay 24 frames from a 10 fps source and become
72 from a 30 fps one; a "resize" spec stretches whatever it is given to its window, so a longer
history would squeeze several actions into one window, which is what ``xmkd live`` did with its
former fixed 90 frames). :meth:`StreamingClassifier.describe` says what was chosen and why.

Sources that play labeled clips (synthetic, NTU replay) mark each frame with its clip and
action; predictions carry them, and :class:`ClipScorer` scores the prediction standing at each
clip's last frame (``xmkd live --json``'s ``live_accuracy``).

Capture never waits: ``push`` only appends to the buffers and, when due, replaces the one pending
request (a request the worker has not started yet is dropped and counted, never queued). The
worker smooths probabilities over time (EMA or a mean of the last n, or none) and emits a
:class:`Prediction` to a callback and to a bounded queue (oldest dropped when nobody reads).
"""

from __future__ import annotations

import bisect
import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from capture.source import host_clock_ns
from engines.choices import SMOOTHING_CHOICES
from xmkd.errors import XmkdError

Smoothing = Literal["none", "ema", "mean"]


@dataclass
class StreamingConfig:
    """How the stream is cut into windows and how predictions are smoothed.

    A field left at None takes the model's value (its stream metadata,
    ``engines.backends.ModelSource.stream_info``), so the live window is the one the students
    were trained on; :meth:`StreamingClassifier.describe` names what was used and where it came
    from.

    Attributes:
        every: run the model every k-th frame (30 fps / 5 = 6 predictions per second).
        history: frames kept per body and classified as one clip; None = the training clips'
            median duration converted to the source's frame rate (``source_fps``), capped at
            the window for "pad" specs (which keep a clip's first ``window`` frames).
        source_fps: the stream's frame rate; None = the rate the model was trained at.
        min_frames: frames needed before the first prediction.
        smoothing: "none" (the default: each prediction is its own window's, so the one
            standing at a clip's end is what offline evaluation of the clip says), "ema"
            (exponential moving average) or "mean" (of the last ``mean_count`` predictions).
            Smoothing steadies the displayed label within an action but mixes in earlier
            windows, which reach into the previous action: EMA at 0.5 changed the clip-end
            prediction of 1 of 24 clips on one labeled synthetic stream (none of 48 on
            another), "mean" of 5 cost over 40 points (bench/bench_live_accuracy.py). Pick
            "ema" for a steadier display where agreement with offline evaluation matters less.
        ema_alpha: weight of the newest prediction in the EMA.
        mean_count: predictions averaged by "mean".
        top_k: labels reported per prediction.
        selection: body choice of ``xmkd.ntu.to_model_array`` ("motion": the M bodies that move
            most; "first": the first M listed per frame, as the st-gcn reference); None = the
            rule the training data used.
        at_clip_end: also classify a frame that ends a clip (``Frame.clip_end``, set by sources
            that play clips: synthetic, NTU replay), whatever ``every`` says, so the
            prediction standing at a clip's end is of a window ending there. Without it, the
            window standing at the end of a 24-frame clip with ``every`` 5 ended up to 4
            frames early and started in the previous clip: live accuracy fell from offline's
            69% to 27-31% (bench/bench_live_accuracy.py). A camera marks no clip ends, so
            there a prediction lags an action's end by up to ``every`` - 1 frames; ``every`` 1
            removes that lag at the cost of one inference per frame.
        queue_size: predictions kept for a consumer that reads ``predictions`` (oldest dropped).
    """

    every: int = 5
    history: int | None = None
    source_fps: float | None = None
    min_frames: int = 8
    smoothing: Smoothing = "none"
    ema_alpha: float = 0.5
    mean_count: int = 5
    top_k: int = 5
    selection: str | None = None
    at_clip_end: bool = True
    queue_size: int = 64

    def __post_init__(self) -> None:
        if self.every < 1:
            raise XmkdError(f"--every must be at least 1 frame, got {self.every}")
        if self.history is not None and self.history < 1:
            raise XmkdError(f"the history must be at least 1 frame, got {self.history}")
        if self.source_fps is not None and not self.source_fps > 0:
            raise XmkdError(f"the source frame rate must be positive, got {self.source_fps}")
        if self.smoothing not in SMOOTHING_CHOICES:
            raise XmkdError(
                f"unknown smoothing {self.smoothing!r}; "
                f"choose one of {', '.join(SMOOTHING_CHOICES)}"
            )
        if not 0.0 < self.ema_alpha <= 1.0:
            raise XmkdError(f"the EMA weight must be in (0, 1], got {self.ema_alpha}")
        if self.mean_count < 1 or self.top_k < 1 or self.min_frames < 1:
            raise XmkdError("mean_count, top_k and min_frames must be at least 1")
        if self.selection is not None and self.selection not in ("motion", "first"):
            raise XmkdError(f"unknown body selection {self.selection!r}; choose motion or first")


@dataclass(frozen=True)
class WindowPlan:
    """What the live window is and where each value came from (said to the user)."""

    history: int  # frames per window
    fps: float  # the stream's frame rate assumed for it
    selection: str  # body rule of to_model_array
    max_bodies: int  # bodies chosen per window before the spec keeps num_persons
    origin: str  # one sentence: where history, rate and selection came from

    def describe(self, spec: Any) -> str:
        return (
            f"live window: the last {self.history} frames ({self.history / self.fps:.2f} s at "
            f"{self.fps:g} fps) -> {spec.window} frames ({spec.fit}, centre {spec.center}); "
            f"bodies: {self.selection}, {self.max_bodies} chosen, {spec.num_persons} kept; "
            f"{self.origin}"
        )


def plan_window(config: StreamingConfig, stream: Any, spec: Any) -> WindowPlan:
    """The live window of ``config`` for a model trained on clips described by ``stream``
    (``xmkd.checkpoint.StreamInfo``) with input ``spec``."""
    fps = float(config.source_fps or stream.fps)
    told = []
    if config.history is not None:
        history = int(config.history)
        told.append("history given")
    else:
        history = stream.frames_at(fps)
        if spec.fit == "pad" and history > spec.window:
            history = int(spec.window)  # a padded window keeps a clip's first frames only
        converted = f", converted to {fps:g} fps" if fps != stream.fps else ""
        told.append(
            f"history from {stream.origin}: training clips of {stream.clip_frames} frames at "
            f"{stream.fps:g} fps{converted}"
        )
    if config.source_fps is None:
        told.append(f"the stream is assumed to run at the training rate ({stream.fps:g} fps)")
    selection = config.selection or stream.selection
    told.append("body selection given" if config.selection else "body selection as in training")
    return WindowPlan(history, fps, selection, int(stream.max_bodies), "; ".join(told))


@dataclass(frozen=True)
class Prediction:
    """One (smoothed) classification of the latest window."""

    timestamp: float  # seconds, the device clock of the newest frame in the window
    frame_index: int  # index of the newest frame in the window
    labels: tuple[str, ...]  # top-k class names, best first
    probs: tuple[float, ...]  # their smoothed probabilities
    scores: np.ndarray = field(repr=False)  # all classes, smoothed
    raw: np.ndarray = field(repr=False)  # all classes, this window only
    latency_s: float = 0.0  # newest frame's arrival -> prediction emitted
    inference_s: float = 0.0  # preprocessing + model
    frames: int = 0  # frames in the window
    body_ids: tuple[int, ...] = ()  # tracked bodies present in the window
    clip: int | None = None  # the newest frame's clip (sources that play clips)
    clip_end: bool = False  # the newest frame ends its clip
    truth: str | None = None  # the clip's action as one of the model's class names, if known

    @property
    def label(self) -> str:
        return self.labels[0]

    def to_json(self) -> dict[str, Any]:
        """The ``xmkd live --json`` line of this prediction."""
        return {
            "frame": int(self.frame_index),
            "t": round(float(self.timestamp), 6),
            "top": [[name, round(float(p), 6)] for name, p in zip(self.labels, self.probs)],
            "latency_ms": round(self.latency_s * 1000.0, 3),
            "truth": self.truth,
        }

    def format(self) -> str:
        top = ", ".join(f"{name} {p:.2f}" for name, p in zip(self.labels, self.probs))
        return (
            f"t={self.timestamp:8.3f}s frame {self.frame_index:5d}  {top}  "
            f"[{self.latency_s * 1000:.0f} ms]"
        )


class Smoother:
    """Temporal smoothing of probability vectors (EMA, mean of the last n, or none)."""

    def __init__(self, mode: Smoothing = "ema", alpha: float = 0.5, count: int = 5):
        self.mode, self.alpha = mode, alpha
        self._state: np.ndarray | None = None
        self._recent: deque[np.ndarray] = deque(maxlen=count)

    def reset(self) -> None:
        self._state = None
        self._recent.clear()

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        if self.mode == "none":
            return probs
        if self.mode == "ema":
            if self._state is None or self._state.shape != probs.shape:
                self._state = probs.copy()
            else:
                self._state = self.alpha * probs + (1.0 - self.alpha) * self._state
            return self._state.copy()
        self._recent.append(probs)
        return np.mean(np.stack(self._recent), axis=0)


class BodyBuffers:
    """Ring buffers of the last ``history`` frames: one deque of (sequence number, Body) per
    tracked body id, plus the frame ring (sequence number, frame index, device time, arrival
    time, body ids in frame order).

    Sequence numbers count pushed frames (a source's own frame index may restart, e.g. between
    the files of a playlist). A body whose last frame left the frame ring is forgotten.
    """

    def __init__(self, history: int):
        self.history = int(history)
        self.frames: deque[tuple[int, int, int, int, tuple[int, ...]]] = deque(maxlen=self.history)
        self.bodies: dict[int, deque[tuple[int, Any]]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self.frames)

    def clear(self) -> None:
        self.frames.clear()
        self.bodies.clear()

    def push(self, frame: Any, arrival_nsec: int) -> None:
        seq = self._seq
        self._seq += 1
        ids = []
        for body in frame.bodies:
            ring = self.bodies.get(body.id)
            if ring is None:
                ring = self.bodies[body.id] = deque(maxlen=self.history)
            ring.append((seq, body))
            ids.append(body.id)
        self.frames.append((seq, frame.index, frame.device_usec, arrival_nsec, tuple(ids)))
        oldest = self.frames[0][0]
        for body_id in [b for b, ring in self.bodies.items() if ring[-1][0] < oldest]:
            del self.bodies[body_id]
        for ring in self.bodies.values():
            while ring and ring[0][0] < oldest:
                ring.popleft()

    def snapshot(self) -> tuple[list[list[Any]], tuple[int, int, int], tuple[int, ...]]:
        """(per-frame body lists in frame order, newest frame's (index, usec, arrival), ids)."""
        lookup = {bid: dict(ring) for bid, ring in self.bodies.items()}
        per_frame = [[lookup[b][seq] for b in ids] for seq, _, _, _, ids in self.frames]
        newest = self.frames[-1][1:4]
        return per_frame, newest, tuple(sorted(self.bodies))


@dataclass
class _Job:
    frames_bodies: list[list[Any]]
    newest: tuple[int, int, int]
    body_ids: tuple[int, ...]
    clip: tuple[int | None, bool, str | None] = (None, False, None)  # clip, clip_end, truth


def model_truth(frame: Any, class_names: Sequence[str]) -> str | None:
    """A frame's action as one of the model's class names, or None.

    A source's own name counts when the model has that class (the synthetic source names its
    classes); an NTU file's action number ``Aaaa`` maps to class ``aaa - 1`` as in training and
    ``xmkd eval`` (labels are action numbers minus one), when the model has that many classes.
    """
    truth = getattr(frame, "truth", None)
    if truth is None:
        return None
    if truth in class_names:
        return truth
    label = getattr(frame, "label", None)
    is_code = len(truth) == 4 and truth[0] == "A" and truth[1:].isdigit()
    if is_code and label is not None and 0 <= label < len(class_names):
        return class_names[label]
    return None


def frame_column(body: Any, spec: Any, selection: str, max_bodies: int) -> np.ndarray:
    """The window column (3, 25, M) of one body in one frame, as the regular window holds it
    when that body fills slot 0: the same offline path (``prepare_clip``) on a one-frame clip
    with a one-frame window. For "pad" windows centred per frame (or not at all) a frame's
    column depends on that frame alone, so it equals the window's column at that frame."""
    from capture.source import bodies_to_sequence
    from engines.backends import prepare_clip

    one = spec.replace(window=1)
    return prepare_clip(bodies_to_sequence([[body]]), one, selection, max_bodies)[:, 0]


@dataclass
class _BodyStream:
    state: Any  # engines.continual.StepState
    at_window: Any = None  # a copy of the state when it held exactly a window of frames


class ContinualTracker:
    """Continual inference on a stream: one continual state per tracked body.

    Every frame, each tracked body's window column (:func:`frame_column`; zeros in a frame
    where the body is absent, as in the regular window) is pushed into its own state. A body
    gets a fresh state when it appears (a new tracking id, also one that replaces a lost body)
    and loses it when it is lost (its last frame left the ring of the last ``history`` frames,
    as :class:`BodyBuffers` forgets it); a source's clip boundary (a frame of another ``clip``)
    resets every state, and a body that appears within a clip starts with zero frames for the
    clip's earlier frames (the regular window has zeros there).

    Which body is classified: the one the regular window puts in slot 0 (``xmkd.ntu``'s body
    selection over the ring, restarted at each clip), whose state holds that body alone. With
    one person per window (``num_persons`` 1) that is exactly the regular window's content;
    with two, a second chosen body is not paired in (each body is classified on its own).

    What is predicted (``feed`` -> (probabilities, exact) or None):

    * at each completed step (every 4th frame of the body's state): the fast step's
      prediction (``ContinualSTGCN.forward``: the regular model without temporal padding on
      the last ``window`` frames, ``delay`` frames behind; nothing until the first column).
    * at a frame that ends a source's clip: the equal variant
      (``ContinualStepper.window_probs``): the regular model on the window ``prepare_window``
      makes of the clip (zero padded; the clip's first ``window`` frames when it is longer),
      which is what offline evaluation of the clip computes.
    """

    def __init__(self, stepper: Any, spec: Any, plan: WindowPlan, at_clip_end: bool = True):
        self.stepper = stepper
        self.spec = spec
        self.plan = plan
        self.at_clip_end = at_clip_end
        self.ring = BodyBuffers(plan.history)
        self.bodies: dict[int, _BodyStream] = {}
        self.clip: int | None = None
        self.clip_frames = 0  # frames since the last reset
        self.resets = 0

    @property
    def window(self) -> int:
        return int(self.stepper.window)

    def reset(self) -> None:
        """Forget every state and the ring (a new source, a clip boundary)."""
        self.ring.clear()
        self.bodies.clear()
        self.clip = None
        self.clip_frames = 0
        self.resets += 1

    def _new_stream(self, zeros: np.ndarray) -> _BodyStream:
        stream = _BodyStream(self.stepper.start())
        if self.clip is not None:  # the clip's frames before this body appeared
            for _ in range(self.clip_frames - 1):
                self._push(stream, zeros, record=False)
        return stream

    def _push(self, stream: _BodyStream, column: np.ndarray, record: bool = True) -> Any:
        probs = self.stepper._push(stream.state, column, record)
        if stream.state.frames == self.window:
            stream.at_window = self.stepper.copy(stream.state)
        return probs

    def feed(self, frame: Any) -> tuple[np.ndarray, bool, int, int] | None:
        """Push one frame into every tracked body's state; (probabilities, exact, body id,
        frames in its state) when this frame gives a prediction, else None."""
        clip = getattr(frame, "clip", None)
        if clip is not None and clip != self.clip:
            self.reset()
            self.clip = clip
        self.ring.push(frame, 0)
        self.clip_frames += 1
        for body_id in [b for b in self.bodies if b not in self.ring.bodies]:
            del self.bodies[body_id]  # lost: its state goes with it
        present: dict[int, Any] = {}
        for body in frame.bodies:
            present.setdefault(body.id, body)  # a body listed twice keeps its first listing
        stream_info = self.plan
        zeros = np.zeros((3, 25, self.spec.num_persons), dtype=np.float32)
        completed: dict[int, np.ndarray] = {}
        for body_id in self.ring.bodies:
            stream = self.bodies.get(body_id)
            if stream is None:
                stream = self.bodies[body_id] = self._new_stream(zeros)
            body = present.get(body_id)
            column = (
                zeros
                if body is None
                else frame_column(body, self.spec, stream_info.selection, stream_info.max_bodies)
            )
            probs = self._push(stream, column)
            if probs is not None:
                completed[body_id] = probs
        clip_end = self.at_clip_end and bool(getattr(frame, "clip_end", False))
        if not completed and not clip_end:
            return None
        primary = self.primary()
        if primary is None:
            return None
        stream = self.bodies[primary]
        if clip_end:
            exact = stream.state if stream.state.frames <= self.window else stream.at_window
            probs = self.stepper.window_probs(exact)
            if probs is not None:
                return probs, True, primary, min(stream.state.frames, self.window)
        if primary in completed:
            return completed[primary], False, primary, stream.state.frames
        return None

    def primary(self) -> int | None:
        """The body the regular window puts in slot 0 (``xmkd.ntu.select_bodies`` over the
        ring), or None without bodies."""
        if len(self.ring.bodies) <= 1:
            return next(iter(self.ring.bodies), None)
        from capture.source import bodies_to_sequence
        from xmkd.ntu import select_bodies

        per_frame, _, _ = self.ring.snapshot()
        seq = bodies_to_sequence(per_frame)
        slots = select_bodies(seq, self.plan.max_bodies, self.plan.selection)
        first = np.asarray(seq.body_ids)[slots == 0]
        return int(first[0]) if first.size else None


class StreamingClassifier:
    """Classifies the live stream with a loaded backend (see :mod:`engines.backends`).

    Use as a context manager (starts/stops the worker thread), ``push`` every frame from the
    capture thread, read predictions from ``on_prediction`` (called on the worker thread) or
    from the ``predictions`` queue.
    """

    def __init__(
        self,
        backend: Any,
        config: StreamingConfig | None = None,
        class_names: Sequence[str] | None = None,
        spec: Any = None,
        on_prediction: Callable[[Prediction], None] | None = None,
    ):
        self.backend = backend
        self.config = config or StreamingConfig()
        source = getattr(backend, "source", None)
        self.class_names = list(class_names or (source.class_names if source else []))
        self.spec = spec if spec is not None else (source.spec if source else None)
        if self.spec is None or not self.class_names:
            raise XmkdError("the streaming classifier needs class names and an input spec")
        self.on_prediction = on_prediction
        self.predictions: queue.Queue[Prediction] = queue.Queue(maxsize=self.config.queue_size)
        self.stream = source.stream_info if source is not None else _legacy_stream()
        self.plan = plan_window(self.config, self.stream, self.spec)
        self.buffers = BodyBuffers(self.plan.history)
        #: continual mode: the backend is an engines.continual.ContinualStepper
        self.continual = hasattr(backend, "window_probs")
        self.tracker: ContinualTracker | None = None
        if self.continual:
            self.tracker = ContinualTracker(backend, self.spec, self.plan, self.config.at_clip_end)
        self._frames: deque[tuple[Any, int]] = deque()
        #: frames the continual worker had not taken when the backlog overflowed (dropped, the
        #: states reset: a state cannot skip frames)
        self.dropped_frames = 0
        self._reset_tracker = False
        self.smoother = Smoother(
            self.config.smoothing, self.config.ema_alpha, self.config.mean_count
        )
        self.frames_seen = 0
        self.frames_with_bodies = 0
        self.requests = 0
        self.dropped_requests = 0
        self.emitted = 0
        self.errors: list[str] = []
        self._pending: _Job | None = None
        self._busy = False
        self._cond = threading.Condition()
        self._infer_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> StreamingClassifier:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(
                target=self._worker, name="xmkd-streaming-classifier", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> StreamingClassifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_source_fps(self, fps: float) -> None:
        """Tell the classifier the stream's frame rate (once the source is known, before its
        first frame): the default history is converted to it. Forgets buffered frames."""
        if fps and fps > 0 and fps != self.config.source_fps:
            self.config = dataclasses.replace(self.config, source_fps=float(fps))
            self.plan = plan_window(self.config, self.stream, self.spec)
            self.buffers = BodyBuffers(self.plan.history)
            if self.continual:
                self.tracker = ContinualTracker(
                    self.backend, self.spec, self.plan, self.config.at_clip_end
                )
            self.reset()

    def describe(self) -> str:
        """What the live path does, and where each setting came from (two lines)."""
        c = self.config
        smoothing = {"none": "none", "ema": f"ema (alpha {c.ema_alpha:g})"}.get(
            c.smoothing, f"mean of {c.mean_count}"
        )
        if self.continual:
            chunk = self.backend.ensemble.chunk
            delay = self.backend.ensemble.students[0].delay
            return (
                f"{self.plan.describe(self.spec)}\n"
                f"continual on {self.backend.name}: one state per tracked body, a prediction "
                f"every {chunk} frames (the model without temporal padding on the last "
                f"{self.spec.window} frames, {delay} frames behind)"
                f"{'; at each clip end the regular model on the clip' if c.at_clip_end else ''}"
                f"; smoothing {smoothing}"
            )
        return (
            f"{self.plan.describe(self.spec)}\n"
            f"classifying every {c.every} frames"
            f"{' and at each clip end' if c.at_clip_end else ''}; smoothing {smoothing}"
        )

    def reset(self) -> None:
        """Forget buffered frames and the smoothing state (e.g. when the source changes)."""
        with self._cond:
            self._pending = None
            self._frames.clear()
            if self.tracker is not None:
                self.tracker.reset()
        self.buffers.clear()
        self.smoother.reset()
        self.frames_seen = 0

    # ---------------------------------------------------------------- capture side
    def push(self, frame: Any, wait: bool = False) -> bool:
        """Add a frame; returns True when it triggered a classification request. Never blocks
        on inference unless ``wait`` (files played as fast as possible: every request is then
        handled before the next frame, so none is dropped and a run is repeatable)."""
        arrival = frame.host_nsec or host_clock_ns()  # the clock frames are stamped with
        self.buffers.push(frame, arrival)
        self.frames_seen += 1
        self.frames_with_bodies += bool(frame.bodies)
        if self.continual:
            return self._push_continual(frame, arrival, wait)
        clip_end = bool(getattr(frame, "clip_end", False))
        due = self.frames_seen % self.config.every == 0 or (clip_end and self.config.at_clip_end)
        if not due or len(self.buffers) < self.config.min_frames or not self.buffers.bodies:
            return False
        clip = (getattr(frame, "clip", None), clip_end, model_truth(frame, self.class_names))
        job = _Job(*self.buffers.snapshot(), clip=clip)
        with self._cond:
            if self._pending is not None:
                self.dropped_requests += 1  # stale: a newer window supersedes it
            self._pending = job
            self.requests += 1
            self._cond.notify()
        if wait:
            self.flush()
        return True

    def _push_continual(self, frame: Any, arrival: int, wait: bool) -> bool:
        """Continual mode: every frame goes to the worker (a state cannot skip one); a backlog
        beyond ``history`` frames (the worker cannot keep up) is dropped and the states reset."""
        with self._cond:
            if len(self._frames) >= max(self.plan.history, 4 * self.spec.window):
                self.dropped_frames += len(self._frames)
                self._frames.clear()
                self._reset_tracker = True
            self._frames.append((frame, arrival))
            self.requests += 1
            self._cond.notify()
        if wait:
            self.flush()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the worker has handled every request; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy or self._frames:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def classify_now(self) -> Prediction | None:
        """Classify the current buffers synchronously in the calling thread (and emit); in
        continual mode, the equal variant of the classified body's state."""
        if not self.buffers.bodies:
            return None
        if self.tracker is not None:
            return self._classify_state_now()
        return self._handle(_Job(*self.buffers.snapshot()))

    # ---------------------------------------------------------------- worker side
    def window(self, frames_bodies: list[list[Any]]) -> np.ndarray:
        """The model input (3, window, 25, M) of per-frame body lists: the offline pipeline."""
        from capture.source import bodies_to_sequence
        from engines.backends import prepare_clip

        seq = bodies_to_sequence(frames_bodies)
        return prepare_clip(seq, self.spec, self.plan.selection, self.plan.max_bodies)

    def _handle(self, job: _Job) -> Prediction:
        start = time.perf_counter()
        with self._infer_lock:
            window = self.window(job.frames_bodies)
            raw = self.backend.classify(window[None])[0]
            smoothed = self.smoother(raw)
        inference = time.perf_counter() - start
        return self._predict(job, raw, smoothed, inference, len(job.frames_bodies))

    def _classify_state_now(self) -> Prediction | None:
        tracker = self.tracker
        assert tracker is not None
        self.flush()
        start = time.perf_counter()
        with self._infer_lock:
            body = tracker.primary()
            if body is None or body not in tracker.bodies:
                return None
            state = tracker.bodies[body].state
            raw = self.backend.window_probs(state)
            if raw is None:  # more than a window of frames: the regular model on its last one
                raw = self.backend.flush_probs(state)
            smoothed = self.smoother(raw)
        index, usec, arrival = self.buffers.frames[-1][1:4]
        job = _Job([], (index, usec, arrival), (body,))
        frames = min(state.frames, tracker.window)
        return self._predict(job, raw, smoothed, time.perf_counter() - start, frames)

    def _continual_frame(self, frame: Any, arrival: int) -> None:
        tracker = self.tracker
        assert tracker is not None
        start = time.perf_counter()
        with self._infer_lock:
            if self._reset_tracker:
                self._reset_tracker = False
                tracker.reset()
            out = tracker.feed(frame)
            if out is None:
                return
            raw, _exact, body, frames = out
            smoothed = self.smoother(raw)
        clip = (
            getattr(frame, "clip", None),
            bool(getattr(frame, "clip_end", False)),
            model_truth(frame, self.class_names),
        )
        job = _Job([], (frame.index, frame.device_usec, arrival), (body,), clip)
        self._predict(job, raw, smoothed, time.perf_counter() - start, frames)

    def _predict(
        self, job: _Job, raw: np.ndarray, smoothed: np.ndarray, inference: float, frames: int
    ) -> Prediction:
        k = min(self.config.top_k, len(smoothed))
        top = np.argsort(-smoothed, kind="stable")[:k]
        index, usec, arrival = job.newest
        prediction = Prediction(
            timestamp=usec / 1e6,
            frame_index=index,
            labels=tuple(self.class_names[i] for i in top),
            probs=tuple(float(smoothed[i]) for i in top),
            scores=smoothed.astype(np.float32),
            raw=np.asarray(raw, dtype=np.float32),
            latency_s=(host_clock_ns() - arrival) / 1e9,
            inference_s=inference,
            frames=frames,
            body_ids=job.body_ids,
            clip=job.clip[0],
            clip_end=job.clip[1],
            truth=job.clip[2],
        )
        self._emit(prediction)
        return prediction

    def _emit(self, prediction: Prediction) -> None:
        self.emitted += 1
        while True:
            try:
                self.predictions.put_nowait(prediction)
                break
            except queue.Full:
                try:
                    self.predictions.get_nowait()
                except queue.Empty:
                    pass
        if self.on_prediction is not None:
            self.on_prediction(prediction)

    def _worker(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._frames and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                if self.continual:
                    job, frames = None, list(self._frames)
                    self._frames.clear()
                else:
                    job, frames, self._pending = self._pending, [], None
                self._busy = True
            try:
                if job is not None:
                    self._handle(job)
                for frame, arrival in frames:
                    self._continual_frame(frame, arrival)
            except Exception as exc:  # keep the stream alive; report what went wrong
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def _legacy_stream() -> Any:
    from xmkd.checkpoint import LEGACY_STREAM

    return LEGACY_STREAM


class ClipScorer:
    """Live accuracy on a labeled stream: the prediction standing at each clip's last frame.

    Feed every frame (``frame``) and every prediction (``prediction``, any thread); a clip is
    scored when its truth is known (``model_truth``): right when the latest prediction made at
    or before the clip's last frame names it, wrong otherwise (also when no prediction stood).
    """

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self.clips: dict[int, tuple[int, str | None]] = {}  # clip -> (last frame index, truth)
        self._predictions: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def frame(self, frame: Any) -> None:
        clip = getattr(frame, "clip", None)
        if clip is not None:
            self.clips[int(clip)] = (int(frame.index), model_truth(frame, self.class_names))

    def prediction(self, prediction: Prediction) -> None:
        with self._lock:
            self._predictions.append((int(prediction.frame_index), prediction.label))

    def outcomes(self) -> list[tuple[int, str, str | None]]:
        """(clip, truth, standing prediction or None) of every scored clip, in clip order."""
        with self._lock:
            preds = sorted(self._predictions, key=lambda p: p[0])
        frames = [p[0] for p in preds]
        out = []
        for clip, (last, truth) in sorted(self.clips.items()):
            if truth is None:
                continue
            k = bisect.bisect_right(frames, last) - 1
            out.append((clip, truth, preds[k][1] if k >= 0 else None))
        return out

    def summary(self) -> dict[str, Any]:
        """``{"live_accuracy": percent or None, "clips": scored clips, "clips_correct",
        "clips_seen"}``."""
        scored = self.outcomes()
        correct = sum(truth == pred for _, truth, pred in scored)
        return {
            "live_accuracy": round(100.0 * correct / len(scored), 2) if scored else None,
            "clips": len(scored),
            "clips_correct": correct,
            "clips_seen": len(self.clips),
        }


def score_stream(backend: Any, capture: Any, config: StreamingConfig) -> tuple[dict, list[str]]:
    """Play a labeled source (synthetic, NTU replay) through a classifier in lockstep, as
    ``xmkd live --json`` does: (the :class:`ClipScorer` summary, names of the clips played), for
    the tests and benchmarks that compare live with offline accuracy on the same clips."""
    scorer = ClipScorer(backend.source.class_names)
    played: list[str] = []
    classifier = StreamingClassifier(backend, config, on_prediction=scorer.prediction)
    with classifier, capture:
        classifier.set_source_fps(capture.fps)
        for frame in capture:
            if frame.clip is not None and frame.clip == len(played):
                current = getattr(capture, "current_clip", None) or capture.current.name
                played.append(current.split(".")[0])
            scorer.frame(frame)
            classifier.push(frame, wait=True)
        classifier.flush()
    return scorer.summary(), played
