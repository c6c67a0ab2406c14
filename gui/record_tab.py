"""Record tab: pick a source, set the sensor and the session's NTU metadata, watch the colour
preview with the 2D skeleton and the skeleton projections, and record takes into a session.

Preview runs the source in a :class:`gui.workers.SourceWorker` thread. Recording hands the
source to the capture part's crash-safe recorder (``capture.recorder.Recorder``), which runs its
own capture, writer and finalizer threads; the GUI sees the frames through a tap on the source
(:class:`TappedSource`) that only fills a one-slot mailbox, so neither the UI nor the recorder's
capture thread ever waits for the other. The recorder itself is started, waited for and stopped
in a :class:`RecordWorker` thread.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from capture.calibration import COLOR_RESOLUTIONS, DEPTH_MODES
from capture.kinect import FPS_CHOICES
from gui.skeleton_view import SkeletonView
from gui.source_picker import SourcePicker
from gui.video_view import VideoView
from gui.workers import (
    PREVIEW_MAX_WIDTH,
    LatestSlot,
    SourceWorker,
    describe_error,
    frame_view,
    run_task,
    source_note,
    start_in_thread,
    wait_for_thread,
)

#: The narrowest preview made, whatever the view's size (a view not laid out yet is tiny).
MIN_PREVIEW_WIDTH = 320
#: Source kinds that take the Sensor box's colour size and frame rate (``width``/``height``/``fps``
#: options; a Kinect takes its named colour mode instead, and depth mode too)
SIZED_KINDS = ("kinect", "synthetic", "orbbec", "webcam")
#: recording modes of capture.recorder.RecordConfig, as the picker shows them
MODES = {
    "takes (Record / Stop)": "takes",
    "continuous (fixed-length clips)": "continuous",
    "presence (a clip while a body is seen)": "presence",
}


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def status_text(stats: dict[str, Any], clips: int, recording_s: float | None) -> str:
    """The status line: fps, dropped frames, disk free, elapsed, clip count."""
    parts = [f"fps {stats.get('fps', 0.0):.1f}", f"dropped {stats.get('dropped', 0)}"]
    if "disk_free" in stats:
        parts.append(f"disk free {human_bytes(stats['disk_free'])}")
    elapsed = recording_s if recording_s is not None else stats.get("elapsed", 0.0)
    parts.append(f"{'recording' if recording_s is not None else 'elapsed'} {elapsed:5.1f} s")
    parts.append(f"clips {clips}")
    return "   ·   ".join(parts)


def nearest_existing(path: str | Path) -> Path:
    """``path`` or its nearest existing parent (for the free space of a folder not yet made)."""
    p = Path(path or ".").resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def tapped_source(
    inner: Any, slot: LatestSlot, notify, stats, max_width: Callable[[], int] | None = None
) -> Any:
    """Wrap a ``capture.source.Source`` so the recorder can run it while the GUI shows its
    frames. Per frame the tap costs a lock and, only when the UI has taken the previous
    preview, a resize to preview size (no wider than ``max_width()``); ``notify()`` and
    ``stats(dict)`` emit signals. The recorder still gets the source's full-size frames."""
    from capture.source import Source

    class _Tapped(Source):
        def __init__(self) -> None:
            super().__init__(camera=inner.camera, max_frames=None)
            self.inner = inner
            self.frames = 0

        @property
        def fps(self) -> float:  # type: ignore[override]
            # the inner source's, read when asked: a file source (MKV) knows its rate only
            # once opened, after this wrapper was made
            return self.inner.fps

        def _open(self) -> None:
            self.inner.open()

        def _close(self) -> None:
            self.inner.close()

        def _frames(self) -> Iterator[Any]:
            t0 = last = time.monotonic()
            since = 0
            for frame in self.inner:
                yield frame
                self.frames += 1
                since += 1
                if slot.empty():
                    width = max_width() if max_width is not None else PREVIEW_MAX_WIDTH
                    slot.put(frame_view(frame, self.frames, width))
                    notify()
                now = time.monotonic()
                if now - last >= 0.5:
                    stats(
                        {
                            "fps": since / (now - last),
                            "frames": self.frames,
                            "dropped": self.inner.dropped_frames,
                            "elapsed": now - t0,
                        }
                    )
                    last, since = now, 0

        @property
        def realtime(self) -> bool:
            # the recorder waits for a file played as fast as it reads (capture.recorder.is_live)
            return getattr(self.inner, "realtime", True)

        @property
        def description(self) -> str:
            return self.inner.description

        def device_info(self) -> dict[str, Any]:
            return self.inner.device_info()

        @property
        def dropped_frames(self) -> int:
            return self.inner.dropped_frames

        def stop(self) -> None:
            super().stop()
            self.inner.stop()

    return _Tapped()


class RecordWorker(QObject):
    """Runs ``capture.recorder.Recorder`` on one source until stopped; reports frames (through
    the tap), status, each finished clip (from the recorder's log) and the final stats."""

    frame_ready = Signal()
    stats = Signal(dict)
    clip_done = Signal(str)
    log = Signal(str)
    error = Signal(str)
    done = Signal(dict)
    finished = Signal()

    def __init__(self, spec: str, session_dir: str, config: Any, camera: int = 1):
        super().__init__()
        self.spec = spec
        self.camera = camera
        self.session_dir = session_dir
        self.config = config
        self.slot = LatestSlot()
        self.max_width = PREVIEW_MAX_WIDTH  # the preview's width, set by the tab (UI thread)
        self.recorder: Any = None
        self._stop = threading.Event()
        self._disk = nearest_existing(session_dir)

    def _stats(self, stats: dict) -> None:
        recorder = self.recorder
        if recorder is not None:
            stats["clips"] = len(recorder.clips)
            started = recorder.started_at
            if started is not None:
                stats["recording"] = time.monotonic() - started
        try:
            stats["disk_free"] = shutil.disk_usage(self._disk).free
        except OSError:
            pass
        self.stats.emit(stats)

    def _log(self, line: str) -> None:
        # The recorder logs "<clip name>: N frames" when a clip is finalized.
        name = line.split(":", 1)[0].strip()
        if len(name) == 20 and name.startswith("S") and "A" in name:
            self.clip_done.emit(line)
        else:
            self.log.emit(line)

    def stop(self) -> None:
        self._stop.set()
        recorder = self.recorder
        if recorder is not None:
            if recorder.config.mode == "takes":
                recorder.stop_take()
            recorder.request_stop()

    @Slot()
    def run(self) -> None:
        from capture.recorder import Recorder
        from capture.source import open_source

        try:
            source = tapped_source(
                open_source(self.spec, camera=self.camera),
                self.slot,
                self.frame_ready.emit,
                self._stats,
                lambda: self.max_width,
            )
            recorder = Recorder([source], self.session_dir, self.config, log=self._log)
            recorder.start()
            note = source_note(source.inner)
            if note:
                self.log.emit(note)
            self.recorder = recorder
            if self.config.mode == "takes":
                recorder.start_take()
            if self._stop.is_set():  # stopped while starting
                self.stop()
            result = recorder.wait()
            self.done.emit(result)
        except Exception as exc:
            self.error.emit(describe_error(exc))
        finally:
            self.finished.emit()


class RecordTab(QWidget):
    recording_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker: SourceWorker | RecordWorker | None = None
        self.recorder: RecordWorker | None = None
        self._pending_record: Any = None
        self._clips_before = 0
        self._last_stats: dict[str, Any] = {}

        controls = QVBoxLayout()
        source_box = QGroupBox("Source")
        sl = QVBoxLayout(source_box)
        self.picker = SourcePicker()
        sl.addWidget(self.picker)
        controls.addWidget(source_box)

        sensor_box = QGroupBox("Sensor")
        sf = QFormLayout(sensor_box)
        self.color_res = QComboBox()
        self.color_res.addItems(list(COLOR_RESOLUTIONS))
        self.color_res.setToolTip(
            "colour resolution: a Kinect's colour mode; the size an Orbbec device streams or a "
            "webcam is asked for (a webcam without it gives its nearest, which the session "
            "records); the synthetic source renders at this size"
        )
        self.depth_mode = QComboBox()
        self.depth_mode.addItems(list(DEPTH_MODES))
        self.depth_mode.setCurrentText("NFOV_UNBINNED")  # the SDK's and pyk4a's default
        self.fps = QComboBox()
        self.fps.addItems([str(f) for f in sorted(FPS_CHOICES, reverse=True)])
        sf.addRow("colour", self.color_res)
        sf.addRow("depth", self.depth_mode)
        sf.addRow("fps", self.fps)
        controls.addWidget(sensor_box)
        # the same kinds as source_options passes each setting to
        self.picker.bind_settings(
            {
                self.color_res: SIZED_KINDS,
                self.depth_mode: ("kinect",),
                self.fps: SIZED_KINDS,
            }
        )

        session_box = QGroupBox("Session")
        ss = QFormLayout(session_box)
        orow = QHBoxLayout()
        self.session_dir = QLineEdit(str(Path("recordings") / "session"))
        self.session_browse = QPushButton("…")
        self.session_browse.setFixedWidth(28)
        orow.addWidget(self.session_dir)
        orow.addWidget(self.session_browse)
        ss.addRow("folder", orow)
        self.setup = QSpinBox()
        self.setup.setRange(1, 999)
        self.performer = QSpinBox()
        self.performer.setRange(1, 999)
        self.replication = QSpinBox()
        self.replication.setRange(1, 999)
        self.camera = QSpinBox()
        self.camera.setRange(1, 999)
        ss.addRow("setup S", self.setup)
        ss.addRow("performer P", self.performer)
        ss.addRow("replication R", self.replication)
        ss.addRow("camera C", self.camera)
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        ss.addRow("clips", self.mode)
        self.clip_seconds = QDoubleSpinBox()
        self.clip_seconds.setRange(0.5, 600.0)
        self.clip_seconds.setValue(10.0)
        self.clip_seconds.setSuffix(" s")
        ss.addRow("clip length", self.clip_seconds)
        self.flow = QCheckBox("live optical flow (for the flow teacher)")
        self.flow.setChecked(True)
        ss.addRow("", self.flow)
        controls.addWidget(session_box)

        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.record_button = QPushButton("Record")
        self.record_button.setStyleSheet("QPushButton:checked { background: #d33; color: white; }")
        self.record_button.setCheckable(True)
        self.stop_button = QPushButton("Stop")
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.record_button)
        buttons.addWidget(self.stop_button)
        controls.addLayout(buttons)

        controls.addWidget(QLabel("Clips in this session"))
        self.clips = QListWidget()
        controls.addWidget(self.clips, 1)
        left = QWidget()
        left.setLayout(controls)
        left.setMaximumWidth(380)

        self.video = VideoView()
        self.skeleton = SkeletonView()
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.video)
        right.addWidget(self.skeleton)
        right.setSizes([400, 260])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)

        self.status = QLabel("stopped")
        self.status.setObjectName("status")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00;")
        outer = QVBoxLayout(self)
        outer.addWidget(self.splitter, 1)
        outer.addWidget(self.message)
        outer.addWidget(self.status)

        self.preview_button.clicked.connect(self.start_preview)
        self.record_button.toggled.connect(self._record_toggled)
        self.stop_button.clicked.connect(self.stop)
        self.session_browse.clicked.connect(self._browse_session)
        self.session_dir.editingFinished.connect(self.list_session_clips)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()
        self.picker.message.connect(self.show_message)
        self._update_buttons()

    # ---- settings --------------------------------------------------------------------------
    def persistent_widgets(self) -> dict[str, QWidget]:
        return {
            "source_kind": self.picker.kind,
            "source_path": self.picker.path,
            "synthetic_preset": self.picker.preset,
            "color_resolution": self.color_res,
            "depth_mode": self.depth_mode,
            "fps": self.fps,
            "session_dir": self.session_dir,
            "setup": self.setup,
            "performer": self.performer,
            "replication": self.replication,
            "camera": self.camera,
            "mode": self.mode,
            "clip_seconds": self.clip_seconds,
            "flow": self.flow,
        }

    # ---- source ------------------------------------------------------------------------------
    def source_options(self) -> dict[str, object]:
        """Sensor settings as ``capture`` source options (only the ones the source kind takes):
        a Kinect's colour and depth modes; the colour size and rate of an Orbbec device, a
        webcam or the synthetic renderer. Files play as they were recorded."""
        kind = self.picker.kind_key()
        if kind == "kinect":
            return {
                "resolution": self.color_res.currentText(),
                "depth": self.depth_mode.currentText(),
                "fps": self.fps.currentText(),
            }
        if kind in SIZED_KINDS:
            width, height = COLOR_RESOLUTIONS[self.color_res.currentText()][2]
            return {"width": width, "height": height, "fps": self.fps.currentText()}
        return {}

    def source_spec(self) -> str:
        return self.picker.spec(self.source_options())

    def is_running(self) -> bool:
        return self.worker is not None

    def _connect(self, worker: QObject) -> None:
        worker.frame_ready.connect(self._show_frame)
        worker.stats.connect(self._show_stats)
        worker.error.connect(self.show_message)
        worker.finished.connect(self._worker_finished)

    def start_preview(self) -> None:
        """Show the source without recording."""
        if self.worker is not None:
            return
        problem = self.picker.problem(self.source_options())  # a missing estimator/SDK
        if problem:
            self.show_message(problem)
            return
        self.show_message("")
        worker = SourceWorker(
            self.source_spec(),
            max_width=self.preview_width(),
            disk_path=str(nearest_existing(self.session_dir.text())),
        )
        self._connect(worker)
        worker.opened.connect(self._opened)
        worker.note.connect(self.show_message)
        self.worker = worker
        start_in_thread(worker, self)
        self.status.setText(f"opening {worker.spec} …")
        self._update_buttons()

    def record_config(self) -> Any:
        from capture.recorder import RecordConfig

        return RecordConfig(
            setup=self.setup.value(),
            performer=self.performer.value(),
            replication=self.replication.value(),
            mode=MODES[self.mode.currentText()],
            clip_seconds=self.clip_seconds.value(),
            flow=self.flow.isChecked(),
        )

    def start_recording(self) -> None:
        """Record into the session folder (stops the preview first: one reader per device)."""
        if self.recorder is not None:
            return
        try:
            config = self.record_config()
        except Exception as exc:
            self.show_message(describe_error(exc))
            self._set_record_checked(False)
            return
        if self.worker is not None:
            self._pending_record = config
            self.worker.stop()  # _worker_finished starts the recording
            return
        problem = self.picker.problem(self.source_options())  # a missing estimator/SDK
        if problem:
            self.show_message(problem)
            self._set_record_checked(False)
            return
        self.show_message("")
        worker = RecordWorker(
            self.source_spec(), self.session_dir.text(), config, camera=self.camera.value()
        )
        worker.max_width = self.preview_width()
        self._connect(worker)
        worker.clip_done.connect(self._clip_done)
        worker.log.connect(self.show_message)
        worker.done.connect(self._record_done)
        self.recorder = worker
        self.worker = worker
        start_in_thread(worker, self)
        self.status.setText(f"recording {worker.spec} into {worker.session_dir} …")
        self.recording_changed.emit(True)
        self._update_buttons()

    @Slot(str)
    def _opened(self, description: str) -> None:
        self.status.setText(f"preview: {description}")

    @Slot()
    def _show_frame(self) -> None:
        worker = self.worker
        if worker is None:
            return
        view = worker.slot.take()
        if view is None:
            return
        self.video.set_frame(view.rgb, view.scale, view.pixels, view.full_size)
        self.skeleton.set_bodies(view.joints)
        # the next previews at the size they appear now (the window may have been resized)
        worker.max_width = self.preview_width(view.full_size)

    def preview_width(self, full_size: tuple[int, int] | None = None) -> int:
        """Width the worker reduces colour frames to: as wide as the image appears (pixels
        beyond that are made, converted and painted for nothing), at most PREVIEW_MAX_WIDTH
        and at least MIN_PREVIEW_WIDTH (a view not laid out yet)."""
        shown = self.video.display_width(full_size)
        return max(MIN_PREVIEW_WIDTH, min(PREVIEW_MAX_WIDTH, shown))

    @Slot(dict)
    def _show_stats(self, stats: dict) -> None:
        self._last_stats = stats
        self._refresh_status()

    def _refresh_status(self) -> None:
        recording = self._last_stats.get("recording") if self.recorder is not None else None
        self.status.setText(status_text(self._last_stats, self.clips.count(), recording))

    @Slot(str)
    def _clip_done(self, line: str) -> None:
        self.clips.addItem(line)
        self._refresh_status()

    @Slot(dict)
    def _record_done(self, result: dict) -> None:
        reason = result.get("stop_reason")
        if reason:
            self.show_message(str(reason))
        dropped = sum(result.get("dropped_frames", {}).values())
        overflow = sum(result.get("queue_overflow", {}).values())
        self.status.setText(
            f"recorded {result.get('clips', 0)} clip(s); dropped frames {dropped}"
            + (f", recorder queue overflow {overflow}" if overflow else "")
        )

    @Slot()
    def _worker_finished(self) -> None:
        was_recording = self.recorder is not None
        self.worker = None
        self.recorder = None
        if was_recording:
            self._set_record_checked(False)
            self.replication.setValue(min(999, self.replication.value() + self._new_clips()))
            self.recording_changed.emit(False)
        else:
            self.status.setText("stopped")
        self._update_buttons()
        pending, self._pending_record = self._pending_record, None
        if pending is not None and self.record_button.isChecked():
            self.start_recording()

    def _new_clips(self) -> int:
        return max(0, self.clips.count() - self._clips_before)

    def stop(self) -> None:
        """Stop recording (the open clip is finalized) or the preview."""
        self._pending_record = None
        if self.worker is not None:
            self.worker.stop()
        self._set_record_checked(False)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop and wait for the capture thread (window closing); a recording is finalized."""
        worker = self.worker
        self.stop()
        wait_for_thread(worker, timeout_ms)

    # ---- recording ---------------------------------------------------------------------------
    def _browse_session(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Session folder", self.session_dir.text())
        if path:
            self.session_dir.setText(path)

    def list_session_clips(self) -> None:
        """Fill the clip list from the session folder's session.json (read off the UI thread)."""
        folder = Path(self.session_dir.text())

        def read(report, cancelled) -> list[str]:
            from xmkd.recordings import read_session_json

            if not (folder / "session.json").is_file():
                return []
            clips = read_session_json(folder).get("clips", [])
            return [f"{c['name']}: {c.get('frames', '?')} frames" for c in clips]

        def show(lines: list[str]) -> None:
            if Path(self.session_dir.text()) == folder and not self.is_running():
                self.clips.clear()
                self.clips.addItems(lines)
                self._refresh_status()

        run_task(read, self, result=show, error=self.show_message)

    def _mode_changed(self, *_: object) -> None:
        # takes are cut by hand; the clip length applies to the automatic modes only
        self.clip_seconds.setEnabled(MODES[self.mode.currentText()] != "takes")

    def _set_record_checked(self, on: bool) -> None:
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.blockSignals(False)
        self.record_button.setText("Recording…" if on else "Record")

    def _record_toggled(self, on: bool) -> None:
        self.record_button.setText("Recording…" if on else "Record")
        if on:
            self._clips_before = self.clips.count()
            self.start_recording()
        elif self.recorder is not None:
            self.recorder.stop()
        self._update_buttons()

    # ---- misc --------------------------------------------------------------------------------
    @Slot(str)
    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.preview_button.setEnabled(not running)
        self.stop_button.setEnabled(running or self.record_button.isChecked())
        self.picker.setEnabled(not running)
