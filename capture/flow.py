"""Optical flow for the TSN flow teacher: live during recording or offline (``xmkd flow``).

Frames are resized to the TSN resolution (short side 256 by default, e.g. 1280x720 -> 455x256,
340x256 for 4:3) and turned to grayscale; flow between consecutive frames comes from OpenCV's
DIS (preset ultrafast / fast / medium) or, when opencv-contrib provides ``cv2.optflow``, TV-L1
(the TSN paper's method; about 1 fps on a CPU). Fields are stored as the recordings layout says
(`xmkd.recordings.write_flow`: bound 20, JPEG ``flow_x/y_%05d.jpg`` from 1).

`FlowWorker` runs the computation in a separate process fed through a bounded queue so that the
recorder's capture thread never waits on it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmkd.errors import MissingExtraError, XmkdError

DIS_PRESETS = ("ultrafast", "fast", "medium")
METHODS = ("dis", "tvl1")


@dataclass
class FlowConfig:
    """Flow settings; defaults: DIS 'fast' at short side 256 (TSN's input scale), JPEG q95."""

    method: str = "dis"  # "dis" or "tvl1" (needs opencv-contrib-python)
    preset: str = "fast"  # DIS preset: ultrafast | fast | medium
    short_side: int = 256
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise XmkdError(f"unknown flow method {self.method!r}; choose one of {METHODS}")
        if self.method == "dis" and self.preset not in DIS_PRESETS:
            raise XmkdError(f"unknown DIS preset {self.preset!r}; choose one of {DIS_PRESETS}")
        if self.short_side < 16:
            raise XmkdError(f"flow short side {self.short_side} is too small (at least 16)")


def tsn_size(width: int, height: int, short_side: int = 256) -> tuple[int, int]:
    """(w, h) with the short side scaled to ``short_side`` and the aspect ratio kept (even)."""
    scale = short_side / min(width, height)
    w, h = int(round(width * scale)), int(round(height * scale))
    return w + (w % 2), h + (h % 2)


def _make_algorithm(config: FlowConfig) -> Any:
    import cv2

    if config.method == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise MissingExtraError(
                "TV-L1 optical flow needs cv2.optflow from opencv-contrib-python; install it "
                "(pip install opencv-contrib-python-headless) or use --method dis"
            )
        return cv2.optflow.DualTVL1OpticalFlow_create()
    preset = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }[config.preset]
    return cv2.DISOpticalFlow_create(preset)


def flow_input(frame: np.ndarray, short_side: int = 256) -> np.ndarray:
    """A frame as flow input: grayscale at the TSN resolution (a frame that already is one is
    returned unchanged)."""
    import cv2

    h, w = frame.shape[:2]
    size = tsn_size(w, h, short_side)
    if frame.ndim == 2 and (w, h) == size:
        return frame
    # grayscale first: the area-averaging resize then touches a third of the data (2x faster)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA) if (w, h) != size else gray


class FlowComputer:
    """Streaming flow: feed frames one by one, get the flow from the previous frame to this one."""

    def __init__(self, config: FlowConfig | None = None):
        self.config = config or FlowConfig()
        self._algo = _make_algorithm(self.config)
        self._prev: np.ndarray | None = None

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        return flow_input(frame_bgr, self.config.short_side)

    def push(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """Flow (h, w, 2) float32 in pixels of the TSN resolution, None for the first frame."""
        gray = self.prepare(frame_bgr)
        prev, self._prev = self._prev, gray
        if prev is None:
            return None
        return self._algo.calc(prev, gray, None)

    def reset(self) -> None:
        """Start a new clip (the next frame has no predecessor)."""
        self._prev = None


def iter_flow(
    frames: Iterable[np.ndarray], config: FlowConfig | None = None
) -> Iterator[np.ndarray]:
    """Flow fields of consecutive frames (len(frames) - 1 of them)."""
    computer = FlowComputer(config)
    for frame in frames:
        flow = computer.push(frame)
        if flow is not None:
            yield flow


def write_clip_flow(
    frames: Iterable[np.ndarray], directory: str | Path, config: FlowConfig | None = None
) -> int:
    """Compute and store a clip's flow in the layout's folder; returns the number of pairs."""
    from xmkd.recordings import write_flow

    config = config or FlowConfig()
    return write_flow(directory, iter_flow(frames, config), quality=config.jpeg_quality)


def session_flow(
    session_dir: str | Path,
    config: FlowConfig | None = None,
    overwrite: bool = False,
    log: Any = print,
) -> dict[str, int]:
    """Offline flow for every clip of a session that has a video (``xmkd flow SESSION``)."""
    import shutil

    from xmkd.recordings import Session, count_flow, read_video

    session = Session.open(session_dir, verify=False)
    done: dict[str, int] = {}
    for clip in session.clips:
        if not clip.has_video:
            continue
        if not overwrite and count_flow(clip.flow) == clip.frames - 1 and clip.frames > 1:
            continue
        if clip.flow.exists():
            shutil.rmtree(clip.flow)
        tmp = clip.flow.with_name(clip.flow.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        pairs = write_clip_flow(read_video(clip.video), tmp, config)
        tmp.rename(clip.flow)  # a clip's flow folder appears complete or not at all
        done[clip.name] = pairs
        log(f"{clip.name}: {pairs} flow pairs")
    return done


# ------------------------------------------------------------------------------------------
# Live flow in a worker process
#: How often the flow worker checks that the recorder that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def _watch_parent(parent_pid: int) -> None:
    """Leave as soon as the recorder is gone, whatever the worker is doing.

    A recorder killed outright (kill -9, a crash, a power button) sends no final message, and
    the worker can be blocked where no check in its loop runs: reading a frame the recorder
    was killed in the middle of sending (both ends of the pipe live in this process too, so the
    read never ends), or still starting up when the recorder died. This thread watches the
    parent's sentinel (closed when the parent dies, on every platform) and, on POSIX, whether
    this process was re-parented away from ``parent_pid`` (the recorder's pid, passed in
    rather than read here, so a recorder that died during our start-up is noticed too). The
    clips' flow is then completed by `xmkd recover`.
    """
    import multiprocessing.connection

    parent = mp.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    while True:
        if sentinel is not None:
            gone = bool(multiprocessing.connection.wait([sentinel], PARENT_CHECK_SECONDS))
        else:
            time.sleep(PARENT_CHECK_SECONDS)
            gone = False
        if gone or (os.name == "posix" and os.getppid() != parent_pid):
            os._exit(0)  # nothing to flush: what the worker wrote is already in files


def _worker_main(config: dict[str, Any], jobs: Any, results: Any, parent_pid: int) -> None:
    """Worker loop: jobs are ("frame", clip_dir, index, gray) / ("end", clip_dir) / None."""
    # Ctrl+C in a terminal reaches the whole process group; the recorder handles it and then
    # ends this worker with a None job (a worker killed by it would leave frames stuck in the
    # recorder's queue and hang its exit)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    import cv2

    from xmkd.recordings import encode_flow, flow_paths

    cv2.setNumThreads(1)
    cfg = FlowConfig(**config)
    computers: dict[str, FlowComputer] = {}
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    while True:
        job = jobs.get()
        if job is None:
            break
        if job[0] == "end":
            computers.pop(job[1], None)
            results.put(("end", job[1]))
            continue
        _, clip_dir, index, frame = job
        computer = computers.setdefault(clip_dir, FlowComputer(cfg))
        flow = computer.push(frame)
        if flow is None:
            continue
        x, y = encode_flow(flow)
        Path(clip_dir).mkdir(parents=True, exist_ok=True)
        px, py = flow_paths(clip_dir, index - 1)  # pair i: frame i -> i + 1 (1-based)
        cv2.imwrite(str(px), x, params)
        cv2.imwrite(str(py), y, params)
        results.put(("pair", clip_dir, index - 1))


def _start_ignoring_sigint(process: Any) -> None:
    """Start ``process`` with SIGINT ignored from its first instruction: an ignored signal stays
    ignored across exec, and Python keeps it so, which covers the worker's start-up (about a
    second of imports) before it can ignore SIGINT itself. Only the main thread may change a
    handler; from another thread (the GUI's) the worker ignores SIGINT once it runs."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        process.start()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


class FlowWorker:
    """Computes flow in a separate process. `submit` never blocks: when the worker falls behind
    and its queue is full, the frame's flow is skipped and counted (``skipped``) so the clip's
    flow can be completed offline (``xmkd flow``)."""

    def __init__(self, config: FlowConfig | None = None, max_queue: int = 64):
        self.config = config or FlowConfig()
        _make_algorithm(self.config)  # fail early (e.g. TV-L1 without contrib)
        ctx = mp.get_context("spawn")
        self._jobs = ctx.Queue(maxsize=max_queue)
        self._results = ctx.Queue()
        self._proc = ctx.Process(
            target=_worker_main,
            args=(asdict(self.config), self._jobs, self._results, os.getpid()),
            daemon=True,
        )
        _start_ignoring_sigint(self._proc)
        self.skipped: dict[str, int] = {}
        self.pairs: dict[str, int] = {}
        self._broken: set[str] = set()
        self._ended: set[str] = set()
        self._closed = False

    def submit(self, clip_dir: str | Path, frame_number: int, frame_bgr: np.ndarray) -> bool:
        """Queue frame ``frame_number`` (1-based) of a clip; False if it had to be skipped."""
        key = str(clip_dir)
        # shrink here (cheap) so only a small grayscale image crosses the process boundary
        frame_bgr = flow_input(frame_bgr, self.config.short_side)
        if key in self._broken:
            self.skipped[key] = self.skipped.get(key, 0) + 1
            return False
        try:
            self._jobs.put_nowait(("frame", key, int(frame_number), frame_bgr))
            return True
        except queue.Full:
            # the flow chain of this clip is broken: later pairs would be wrong, stop it here
            self._broken.add(key)
            self.skipped[key] = self.skipped.get(key, 0) + 1
            return False

    def _put_control(self, message: Any) -> bool:
        """Queue a control message, waiting while the worker is alive (never on a dead one)."""
        while self._proc.is_alive():
            try:
                self._jobs.put(message, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def end_clip(self, clip_dir: str | Path) -> None:
        if not self._put_control(("end", str(clip_dir))):
            self._ended.add(str(clip_dir))  # a dead worker: the recorder computes it offline
        self._broken.discard(str(clip_dir))

    def _handle(self, msg: tuple) -> None:
        if msg[0] == "pair":
            self.pairs[msg[1]] = self.pairs.get(msg[1], 0) + 1
        elif msg[0] == "end":
            self._ended.add(msg[1])

    def drain(self) -> None:
        try:
            while True:
                self._handle(self._results.get_nowait())
        except queue.Empty:
            pass

    def wait_clip(self, clip_dir: str | Path, timeout: float = 60.0) -> bool:
        """Wait until the worker has written every pair of a clip ended with `end_clip`
        (False on timeout or a dead worker: the recorder then computes the flow offline)."""
        key = str(clip_dir)
        deadline = time.monotonic() + timeout
        while key not in self._ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._proc.is_alive():
                self.drain()
                break
            try:
                self._handle(self._results.get(timeout=min(remaining, 0.5)))
            except queue.Empty:
                pass
        done = key in self._ended
        self._ended.discard(key)
        return done

    @property
    def pid(self) -> int | None:
        """The worker process's id."""
        return self._proc.pid

    def close(self, timeout: float = 60.0) -> None:
        """End the worker: let it finish its queue, or kill it after ``timeout`` seconds.

        Never hangs, also when the worker died (SIGKILL, a crash): the frames still queued for
        it are dropped instead of being flushed into a pipe nobody reads (that flush is what
        made the recorder's exit hang), and results are read while waiting so the worker never
        blocks on a full result pipe either."""
        if self._closed:
            return
        self._closed = True
        if self._put_control(None):
            deadline = time.monotonic() + timeout
            while self._proc.is_alive() and time.monotonic() < deadline:
                self._proc.join(0.1)
                self.drain()
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5.0)
        self.drain()
        self._jobs.cancel_join_thread()  # anything still queued has no reader any more
        self._jobs.close()
        self._results.close()
