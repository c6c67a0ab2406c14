"""Work that must stay off the UI thread: capture loops, file loading, evaluation, subprocesses.

* :class:`SourceWorker` runs a capture source (``capture.source.open_source``) in a QThread. Per
  frame it calls the tab's consumers in that thread (the recorder, the streaming classifier), and
  hands the UI a ready-to-paint :class:`FrameView` (RGB, reduced to preview size) through a
  one-slot mailbox: the UI always gets the newest frame and never a backlog, however slow it is.
* :class:`TaskWorker` runs one function in a QThread with progress, cancel, result and error.
* :class:`JsonLinesProcess` runs a command (``xmkd distill``, ``xmkd export``) as a QProcess,
  parses its JSON-lines progress, keeps its other output, and cancels it cleanly (SIGINT once
  the child has said it is running, then a kill after a grace period). A crash there only ends
  that process.

Errors the user can act on (``XmkdError``) are passed on as their one sentence; anything else
as its type and message. Nothing here polls: every hand-over is a queued signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QProcess, QThread, QTimer, Signal, Slot

from xmkd.errors import XmkdError

PREVIEW_MAX_WIDTH = 960


def describe_error(exc: BaseException) -> str:
    """The sentence shown in the window for an exception raised by a job."""
    if isinstance(exc, XmkdError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def leave_a_core_for_the_ui() -> int:
    """Limit torch's intra-op threads to one less than the CPU count (at least 1).

    Inference in the GUI runs beside the UI thread; with every core busy in a matrix multiply
    the UI thread waits for the scheduler and the event loop stalls. Returns the thread count.
    """
    import torch

    wanted = max(1, (os.cpu_count() or 1) - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


def let_children_be_interrupted() -> None:
    """Make the child processes this process starts begin with SIGINT's default action.

    A process started with SIGINT ignored (under nohup, as a background job of a script) passes
    the ignore on to every program it runs, and a job would never see the Cancel button's
    SIGINT: it would be killed after the grace period instead of saving its progress. A handled
    signal, unlike an ignored one, is reset to the default across exec, so installing Python's
    own handler here (as an interactive start would have) is enough. Main thread only, where
    Python allows it; elsewhere nothing changes.
    """
    if (
        os.name == "posix"
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def preview_image(bgr: np.ndarray | None, max_width: int = PREVIEW_MAX_WIDTH):
    """BGR frame -> (RGB preview no wider than ``max_width``, scale factor); (None, 1) if none."""
    if bgr is None:
        return None, 1.0
    h, w = bgr.shape[:2]
    scale = 1.0
    if w > max_width:
        scale = max_width / w
        # INTER_AREA averages whole source pixels (no aliasing) but is slow at a fractional
        # ratio (1280 -> 960: 9.5 ms against 1.8 ms bilinear); bilinear does not alias down to
        # half size, so AREA only for larger reductions
        interpolation = cv2.INTER_LINEAR if scale >= 0.5 else cv2.INTER_AREA
        bgr = cv2.resize(bgr, (max_width, round(h * scale)), interpolation=interpolation)
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB), scale
    # one vectorised conversion (a numpy copy of the reversed channels took 5 ms at 960x540)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), scale


@dataclass
class FrameView:
    """What the UI paints for one frame; built in the worker thread."""

    index: int
    rgb: np.ndarray | None
    scale: float
    full_size: tuple[int, int] | None
    joints: list[np.ndarray] = field(default_factory=list)  # per body (25, 3) metres
    pixels: list[np.ndarray] = field(default_factory=list)  # per body (25, 2) colour pixels
    camera: int = 1


def frame_view(frame: Any, index: int, max_width: int = PREVIEW_MAX_WIDTH) -> FrameView:
    """Convert a ``capture.source.Frame`` into a :class:`FrameView`."""
    colour = frame.color
    rgb, scale = preview_image(colour, max_width)
    full = (colour.shape[1], colour.shape[0]) if colour is not None else None
    return FrameView(
        index=index,
        rgb=rgb,
        scale=scale,
        full_size=full,
        joints=[np.asarray(b.joints, dtype=np.float64) for b in frame.bodies],
        pixels=[np.asarray(b.color_px, dtype=np.float64) for b in frame.bodies],
        camera=int(getattr(frame, "camera", 1) or 1),
    )


class LatestSlot:
    """A one-item mailbox between a producer thread and the UI thread.

    ``put`` returns True only when the slot was empty, so the producer emits one notification
    per item the UI will actually take; items the UI had no time for are replaced, not queued.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: Any = None
        self._full = False
        self.replaced = 0

    def put(self, item: Any) -> bool:
        with self._lock:
            was_empty = not self._full
            if self._full:
                self.replaced += 1
            self._item, self._full = item, True
            return was_empty

    def empty(self) -> bool:
        with self._lock:
            return not self._full

    def take(self) -> Any:
        with self._lock:
            item, self._item, self._full = self._item, None, False
            return item


class _WorkerThread(QThread):
    """A QThread whose ``run`` calls the worker's entry method directly.

    (Connecting ``QThread.started`` to the worker's slot is the usual pattern, but PySide6 6.12
    delivers it in the *main* thread when a subclass overrides that slot, measured here; calling
    the method from ``run`` always runs it in the new thread.)
    """

    def __init__(self, target: Callable[[], Any], parent: QObject):
        super().__init__(parent)
        self._target: Callable[[], Any] | None = target

    def run(self) -> None:
        target, self._target = self._target, None  # no reference cycle once it has run
        if target is not None:
            target()


def start_in_thread(worker: QObject, parent: QObject | None = None, entry: str = "run") -> QThread:
    """Run ``worker.<entry>()`` in a new QThread.

    The worker stays an object of the UI thread (the signals it emits from the thread are
    queued to the UI thread's slots). Worker and thread are owned by the application object,
    not by the widget that started them, and Qt deletes both only after the thread has ended:
    a tab deleted while its capture loop is still winding down (a model mid-forward, a clip
    being finalized) must not destroy a running QThread, which aborts the whole process. The
    ``parent`` is used only when no application object exists.
    """
    owner = QCoreApplication.instance() or parent
    worker.setParent(owner)
    thread = _WorkerThread(getattr(worker, entry), owner)
    thread.finished.connect(worker.deleteLater)
    thread.finished.connect(thread.deleteLater)
    worker._thread = thread
    thread.start()
    return thread


def wait_for_thread(worker: QObject | None, timeout_ms: int) -> bool:
    """Wait up to ``timeout_ms`` for the thread started by :func:`start_in_thread` to end;
    True when it has ended (or was already deleted)."""
    thread = getattr(worker, "_thread", None) if worker is not None else None
    if thread is None:
        return True
    try:
        return bool(thread.wait(timeout_ms))
    except RuntimeError:  # already deleted by Qt: it had finished
        return True


FrameConsumer = Callable[[Any], None]


def source_note(source: Any) -> str:
    """What the user should know about an opened source: an MKV or Kinect source without the
    Body Tracking SDK plays frames without skeletons (``skeleton_note``)."""
    note = getattr(source, "skeleton_note", None)
    return f"frames play without skeletons: {note}" if note else ""


class SourceWorker(QObject):
    """Pulls frames from one capture source in its own thread until stopped or exhausted.

    ``open_fn(spec)`` defaults to ``capture.source.open_source``. Consumers are called in the
    worker thread with each raw Frame (cheap calls only: anything slow must queue the frame to
    its own thread). ``stats`` carries ``{"fps", "frames", "dropped", "elapsed"}`` twice a
    second; ``error`` one sentence.
    """

    frame_ready = Signal()
    opened = Signal(str)
    #: something the user should know about the open source (e.g. no body tracking)
    note = Signal(str)
    stats = Signal(dict)
    error = Signal(str)
    finished = Signal()

    def __init__(
        self,
        spec: str,
        consumers: Sequence[FrameConsumer] = (),
        open_fn: Callable[[str], Any] | None = None,
        loop: bool = False,
        max_width: int = PREVIEW_MAX_WIDTH,
        disk_path: str | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.consumers = list(consumers)
        self.open_fn = open_fn
        self.loop = loop
        self.max_width = max_width
        self.slot = LatestSlot()
        self._stop = threading.Event()
        self._source: Any = None
        self.frames = 0
        self.disk_path = disk_path

    def stop(self) -> None:
        """Ask the loop to end after the current frame (safe from any thread)."""
        self._stop.set()
        source = self._source
        if source is not None and hasattr(source, "stop"):
            source.stop()  # ends a paced wait or a blocking device read early

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @Slot()
    def run(self) -> None:
        try:
            open_fn = self.open_fn
            if open_fn is None:
                from capture.source import open_source as open_fn
            while not self._stop.is_set():
                with open_fn(self.spec) as source:
                    self._source = source
                    self.opened.emit(str(getattr(source, "description", self.spec)))
                    note = source_note(source)
                    if note:
                        self.note.emit(note)
                    self._pump(source)
                    self._source = None
                if not self.loop:
                    break
        except Exception as exc:  # reported in the window; the thread ends normally
            if not isinstance(exc, XmkdError):
                traceback.print_exc()
            self.error.emit(describe_error(exc))
        finally:
            try:
                self.wind_down()
            finally:
                self.finished.emit()

    def wind_down(self) -> None:
        """Release what the loop fed (subclasses); runs in the thread before ``finished``, so
        a receiver of ``finished`` knows that all of the worker's own threads have ended."""

    def _pump(self, source: Any) -> None:
        t0 = last = time.monotonic()
        count_since = 0
        for frame in source:
            if self._stop.is_set():
                break
            for consume in self.consumers:
                consume(frame)
            self.frames += 1
            count_since += 1
            if self.slot.put(frame_view(frame, self.frames, self.max_width)):
                self.frame_ready.emit()
            now = time.monotonic()
            if now - last >= 0.5:
                stats = {
                    "fps": count_since / (now - last),
                    "frames": self.frames,
                    "dropped": int(getattr(source, "dropped_frames", 0) or 0),
                    "elapsed": now - t0,
                }
                if self.disk_path:
                    # statvfs can stall on network file systems: never on the UI thread.
                    try:
                        stats["disk_free"] = shutil.disk_usage(self.disk_path).free
                    except OSError:
                        pass
                self.stats.emit(stats)
                last, count_since = now, 0


class TaskSignals(QObject):
    """The signals of one background task; lives in (and is owned by) the UI thread."""

    progress = Signal(int, int, str)
    result = Signal(object)
    error = Signal(str)
    finished = Signal()


class TaskWorker:
    """Runs ``fn(report, cancelled)`` in a thread: ``report(done, total, text)`` emits progress,
    ``cancelled()`` tells the function to stop early; the return value goes to ``result``."""

    def __init__(self, fn: Callable[..., Any], signals: TaskSignals):
        self.fn = fn
        self.signals = signals
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        signals = self.signals
        try:
            value = self.fn(
                lambda done, total, text="": signals.progress.emit(
                    int(done), int(total), str(text)
                ),
                self._cancel.is_set,
            )
            signals.result.emit(value)
        except Exception as exc:
            if not isinstance(exc, XmkdError):
                traceback.print_exc()
            signals.error.emit(describe_error(exc))
        finally:
            signals.finished.emit()


def run_task(fn: Callable[..., Any], owner: QObject, **slots: Callable) -> TaskWorker:
    """Run ``fn`` in a background thread; ``slots`` (``progress``, ``result``, ``error``,
    ``finished``) are called on ``owner``'s (the UI) thread.

    The thread is a daemon Python thread, not a QThread: a job that cannot be interrupted (a
    model load, an export) must not keep the window from closing, and a QThread destroyed
    while running aborts the process. The signal object is a child of ``owner`` and is deleted
    a while after the task ends (never while the thread may still be emitting).
    """
    signals = TaskSignals(owner)
    for name, slot in slots.items():
        getattr(signals, name).connect(slot)
    signals.finished.connect(lambda: QTimer.singleShot(2000, signals.deleteLater))
    worker = TaskWorker(fn, signals)
    threading.Thread(target=worker.run, name="xmkd-gui-task", daemon=True).start()
    return worker


def xmkd_command(*args: str) -> tuple[str, list[str]]:
    """Program and arguments that run ``xmkd ARGS`` with this interpreter (no PATH lookup)."""
    return sys.executable, ["-m", "xmkd", *args]


class JsonLinesProcess(QObject):
    """A child process whose stdout carries JSON objects, one per line.

    ``event`` gets each parsed object; ``output`` gets any other line (stdout or stderr) so
    errors can be shown; ``finished(exit_code, message)`` gives an empty message on success,
    else a sentence (the last error line of the child, or how it ended).

    The child's first JSON object says it is ready: by then it has set up its SIGINT handling
    (an ``xmkd`` command has Python's handler from interpreter start-up, long before its first
    event; a child that sets up its own prints its first object after that). A Cancel that
    comes before it is held back and sent when the child is ready: a SIGINT during the child's
    start-up would end it by the signal's default action, or inside code that cannot clean up,
    instead of reaching its clean-up (the grace-period kill still applies).
    """

    event = Signal(dict)
    output = Signal(str)
    started = Signal()
    finished = Signal(int, str)

    def __init__(self, parent: QObject | None = None, grace_ms: int = 10000):
        super().__init__(parent)
        self.grace_ms = grace_ms
        self.process: QProcess | None = None
        self._buffers = {"out": b"", "err": b""}
        self.stderr_tail: list[str] = []
        self.cancelled = False
        #: the child has printed its first JSON object (it handles SIGINT from then on)
        self.ready = False
        self._interrupt_when_ready = False

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, program: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        if self.is_running():
            raise XmkdError("a job is already running; cancel it first")
        let_children_be_interrupted()
        process = QProcess(self)
        if env:
            from PySide6.QtCore import QProcessEnvironment

            penv = QProcessEnvironment.systemEnvironment()
            for key, value in env.items():
                penv.insert(key, value)
            process.setProcessEnvironment(penv)
        process.readyReadStandardOutput.connect(lambda: self._read("out"))
        process.readyReadStandardError.connect(lambda: self._read("err"))
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        process.started.connect(self.started)
        self.process = process
        self._buffers = {"out": b"", "err": b""}
        self.stderr_tail = []
        self.cancelled = False
        self.ready = False
        self._interrupt_when_ready = False
        self._start_error = ""
        process.start(program, list(args))

    def _read(self, stream: str) -> None:
        process = self.process
        if process is None:
            return
        try:
            data = (
                process.readAllStandardOutput()
                if stream == "out"
                else process.readAllStandardError()
            )
        except RuntimeError:  # the QProcess is being destroyed with its owner
            return
        buffer = self._buffers[stream] + bytes(data.data())
        *lines, rest = buffer.split(b"\n")
        self._buffers[stream] = rest
        for raw in lines:
            self._line(stream, raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, stream: str, line: str) -> None:
        if not line.strip():
            return
        if stream == "out" and line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                self.event.emit(obj)
                if not self.ready:
                    self.ready = True
                    if self._interrupt_when_ready:
                        self._interrupt()
                return
        if stream == "err":
            # tqdm redraws with \r: keep the last state of the line only.
            line = line.split("\r")[-1]
            self.stderr_tail = (self.stderr_tail + [line])[-20:]
        self.output.emit(line)

    def _error(self, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self._start_error = "the process could not be started"
            self.finished.emit(-1, self._start_error)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        for stream in ("out", "err"):
            if self._buffers[stream]:
                self._line(stream, self._buffers[stream].decode("utf-8", "replace"))
                self._buffers[stream] = b""
        if self.cancelled:
            message = "cancelled"
        elif status == QProcess.ExitStatus.CrashExit:
            message = f"the process crashed ({self._last_error_line() or 'no message'})"
        elif code != 0:
            message = self._last_error_line() or f"the process ended with exit code {code}"
        else:
            message = ""
        self.finished.emit(int(code), message)

    def _last_error_line(self) -> str:
        for line in reversed(self.stderr_tail):
            text = line.strip()
            if text and not text.startswith(("Traceback", "File ", "^")):
                return text
        return ""

    def cancel(self) -> None:
        """Interrupt the child (SIGINT: it saves what it can and exits) as soon as it is ready
        (at once when it already is), and kill it if it is still running after the grace
        period."""
        if not self.is_running() or self.cancelled:
            return
        self.cancelled = True
        process = self.process
        QTimer.singleShot(self.grace_ms, lambda: self._kill_if_running(process))
        if self.ready:
            self._interrupt()
        else:
            self._interrupt_when_ready = True

    def _interrupt(self) -> None:
        self._interrupt_when_ready = False
        process = self.process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
            return
        pid = int(process.processId())
        if pid > 0 and os.name == "posix":
            os.kill(pid, signal.SIGINT)
        else:
            process.terminate()

    def _kill_if_running(self, process: QProcess) -> None:
        try:
            if process.state() != QProcess.ProcessState.NotRunning:
                process.kill()
        except RuntimeError:  # already deleted
            pass
