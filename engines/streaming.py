"""Streaming classifier: live capture frames in, smoothed top-k action predictions out.

Frames from any capture source (``capture.source.Frame``: bodies with tracking ids and NTU-25
joints in metres, timestamps) go into ring buffers, one per tracked body id, of the last
``history`` frames. Every ``every`` frames a snapshot of the buffers is handed to a worker
thread, which builds the window with exactly the offline code:
``capture.source.bodies_to_sequence`` -> ``xmkd.ntu.to_model_array`` (choice of up to M bodies by
motion) -> ``xmkd.preprocess.prepare_window`` -> backend. So a clip streamed in gives the same
probabilities as evaluating the clip offline.

Capture never waits: ``push`` only appends to the buffers and, when due, replaces the one pending
request (a request the worker has not started yet is dropped and counted, never queued). The
worker smooths probabilities over time (EMA or a mean of the last n, or none) and emits a
:class:`Prediction` to a callback and to a bounded queue (oldest dropped when nobody reads).
"""

from __future__ import annotations

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

    Attributes:
        every: run the model every k-th frame (30 fps / 5 = 6 predictions per second).
        history: frames kept per body and classified as one clip; None = the model's window for
            "pad" specs (the ST-GCN reference pads clips into its 300-frame window) and 90 frames
            (3 s at 30 fps, about an NTU clip) for resampling specs.
        min_frames: frames needed before the first prediction.
        smoothing: "ema" (exponential moving average), "mean" (of the last ``mean_count``
            predictions) or "none".
        ema_alpha: weight of the newest prediction in the EMA.
        mean_count: predictions averaged by "mean".
        top_k: labels reported per prediction.
        selection: body choice of ``xmkd.ntu.to_model_array`` ("motion": the M bodies that move
            most; "first": the first M listed per frame, as the st-gcn reference).
        queue_size: predictions kept for a consumer that reads ``predictions`` (oldest dropped).
    """

    every: int = 5
    history: int | None = None
    min_frames: int = 8
    smoothing: Smoothing = "ema"
    ema_alpha: float = 0.5
    mean_count: int = 5
    top_k: int = 5
    selection: str = "motion"
    queue_size: int = 64

    def __post_init__(self) -> None:
        if self.every < 1:
            raise XmkdError(f"--every must be at least 1 frame, got {self.every}")
        if self.history is not None and self.history < 1:
            raise XmkdError(f"the history must be at least 1 frame, got {self.history}")
        if self.smoothing not in SMOOTHING_CHOICES:
            raise XmkdError(
                f"unknown smoothing {self.smoothing!r}; "
                f"choose one of {', '.join(SMOOTHING_CHOICES)}"
            )
        if not 0.0 < self.ema_alpha <= 1.0:
            raise XmkdError(f"the EMA weight must be in (0, 1], got {self.ema_alpha}")
        if self.mean_count < 1 or self.top_k < 1 or self.min_frames < 1:
            raise XmkdError("mean_count, top_k and min_frames must be at least 1")

    def history_for(self, spec: Any) -> int:
        if self.history is not None:
            return self.history
        return int(spec.window) if spec.fit == "pad" else 90


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

    @property
    def label(self) -> str:
        return self.labels[0]

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
        self.buffers = BodyBuffers(self.config.history_for(self.spec))
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

    def reset(self) -> None:
        """Forget buffered frames and the smoothing state (e.g. when the source changes)."""
        with self._cond:
            self._pending = None
        self.buffers.clear()
        self.smoother.reset()
        self.frames_seen = 0

    # ---------------------------------------------------------------- capture side
    def push(self, frame: Any) -> bool:
        """Add a frame; returns True when it triggered a classification request. Never blocks
        on inference."""
        arrival = frame.host_nsec or host_clock_ns()  # the clock frames are stamped with
        self.buffers.push(frame, arrival)
        self.frames_seen += 1
        self.frames_with_bodies += bool(frame.bodies)
        due = self.frames_seen % self.config.every == 0
        if not due or len(self.buffers) < self.config.min_frames or not self.buffers.bodies:
            return False
        job = _Job(*self.buffers.snapshot())
        with self._cond:
            if self._pending is not None:
                self.dropped_requests += 1  # stale: a newer window supersedes it
            self._pending = job
            self.requests += 1
            self._cond.notify()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the worker has handled every request; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def classify_now(self) -> Prediction | None:
        """Classify the current buffers synchronously in the calling thread (and emit)."""
        if not self.buffers.bodies:
            return None
        return self._handle(_Job(*self.buffers.snapshot()))

    # ---------------------------------------------------------------- worker side
    def window(self, frames_bodies: list[list[Any]]) -> np.ndarray:
        """The model input (3, window, 25, M) of per-frame body lists: the offline pipeline."""
        from capture.source import bodies_to_sequence
        from xmkd.ntu import to_model_array
        from xmkd.preprocess import prepare_window

        seq = bodies_to_sequence(frames_bodies)
        clip, valid = to_model_array(
            seq, max_bodies=self.spec.num_persons, selection=self.config.selection
        )
        return prepare_window(clip, valid, self.spec, train=False)

    def _handle(self, job: _Job) -> Prediction:
        start = time.perf_counter()
        with self._infer_lock:
            window = self.window(job.frames_bodies)
            raw = self.backend.classify(window[None])[0]
            smoothed = self.smoother(raw)
        inference = time.perf_counter() - start
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
            frames=len(job.frames_bodies),
            body_ids=job.body_ids,
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
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                self._handle(job)
            except Exception as exc:  # keep the stream alive; report what went wrong
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
