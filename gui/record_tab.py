"""Record tab: pick a source, set the sensor and the session's NTU metadata, watch the colour
preview with the 2D skeleton and the skeleton projections, and record takes into a session.

The capture loop runs in a :class:`gui.workers.SourceWorker` thread; while recording, each frame
is handed (in that thread) to the capture part's recorder (``capture.recorder``), which queues it
for its own writer thread, so neither the UI nor the capture loop waits on disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
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

from gui.skeleton_view import SkeletonView
from gui.source_picker import SourcePicker
from gui.video_view import VideoView
from gui.workers import SourceWorker, describe_error, start_in_thread

COLOR_RESOLUTIONS = ("720p", "1080p", "1440p", "1536p", "2160p", "3072p")
DEPTH_MODES = ("NFOV_UNBINNED", "NFOV_2X2BINNED", "WFOV_2X2BINNED", "WFOV_UNBINNED", "OFF")
FPS_CHOICES = ("30", "15", "5")


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


class RecordTab(QWidget):
    recording_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker: SourceWorker | None = None
        self.recorder: Any = None
        self._record_started: float | None = None
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
        self.color_res.addItems(COLOR_RESOLUTIONS)
        self.depth_mode = QComboBox()
        self.depth_mode.addItems(DEPTH_MODES)
        self.fps = QComboBox()
        self.fps.addItems(FPS_CHOICES)
        sf.addRow("colour", self.color_res)
        sf.addRow("depth", self.depth_mode)
        sf.addRow("fps", self.fps)
        controls.addWidget(sensor_box)

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
        self.picker.message.connect(self.show_message)
        self._update_buttons()

    # ---- settings --------------------------------------------------------------------------
    def persistent_widgets(self) -> dict[str, QWidget]:
        return {
            "source_kind": self.picker.kind,
            "source_path": self.picker.path,
            "color_resolution": self.color_res,
            "depth_mode": self.depth_mode,
            "fps": self.fps,
            "session_dir": self.session_dir,
            "setup": self.setup,
            "performer": self.performer,
            "replication": self.replication,
            "camera": self.camera,
        }

    # ---- source ------------------------------------------------------------------------------
    def source_options(self) -> dict[str, object]:
        """Sensor settings as ``capture`` source options (only the ones the source kind takes)."""
        kind = self.picker.kind_key()
        if kind == "kinect":
            return {
                "color": self.color_res.currentText(),
                "depth": self.depth_mode.currentText(),
                "fps": self.fps.currentText(),
            }
        if kind == "synthetic":
            return {"fps": self.fps.currentText()}
        return {}

    def source_spec(self) -> str:
        return self.picker.spec(self.source_options())

    def is_running(self) -> bool:
        return self.worker is not None

    def start_preview(self) -> None:
        if self.worker is not None:
            return
        self.show_message("")
        disk = Path(self.session_dir.text() or ".").resolve()
        while not disk.exists() and disk != disk.parent:
            disk = disk.parent
        worker = SourceWorker(
            self.source_spec(), consumers=[self._to_recorder], disk_path=str(disk)
        )
        worker.frame_ready.connect(self._show_frame)
        worker.stats.connect(self._show_stats)
        worker.error.connect(self.show_message)
        worker.opened.connect(self._opened)
        worker.finished.connect(self._worker_finished)
        self.worker = worker
        start_in_thread(worker, self)
        self.status.setText(f"opening {worker.spec} …")
        self._update_buttons()

    def _to_recorder(self, frame: Any) -> None:
        # Runs in the capture thread: the recorder queues the frame for its writer thread.
        recorder = self.recorder
        if recorder is not None:
            recorder.add_frame(frame)

    @Slot(str)
    def _opened(self, description: str) -> None:
        self.status.setText(f"running: {description}")

    @Slot()
    def _show_frame(self) -> None:
        if self.worker is None:
            return
        view = self.worker.slot.take()
        if view is None:
            return
        self.video.set_frame(view.rgb, view.scale, view.pixels, view.full_size)
        self.skeleton.set_bodies(view.joints)

    @Slot(dict)
    def _show_stats(self, stats: dict) -> None:
        self._last_stats = stats
        self._refresh_status()

    def _refresh_status(self) -> None:
        recording = (
            time.monotonic() - self._record_started if self._record_started is not None else None
        )
        self.status.setText(status_text(self._last_stats, self.clips.count(), recording))

    @Slot()
    def _worker_finished(self) -> None:
        if self.recorder is not None:
            self._finish_recording()
        self.worker = None
        self.status.setText("stopped")
        self._update_buttons()

    def stop(self) -> None:
        """Stop recording (if on) and the preview."""
        if self.record_button.isChecked():
            self.record_button.setChecked(False)
        if self.worker is not None:
            self.worker.stop()

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop and wait for the capture thread (window closing)."""
        worker = self.worker
        self.stop()
        if worker is not None:
            thread = getattr(worker, "_thread", None)
            try:
                if thread is not None:
                    thread.wait(timeout_ms)
            except RuntimeError:  # already deleted: it has finished
                pass
            if self.recorder is not None:
                self._finish_recording()

    # ---- recording ---------------------------------------------------------------------------
    def _browse_session(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Session folder", self.session_dir.text())
        if path:
            self.session_dir.setText(path)

    def _record_toggled(self, on: bool) -> None:
        if on:
            try:
                self._start_recording()
            except Exception as exc:
                self.show_message(describe_error(exc))
                self.record_button.blockSignals(True)
                self.record_button.setChecked(False)
                self.record_button.blockSignals(False)
        else:
            self._finish_recording()
        self._update_buttons()

    def _start_recording(self) -> None:
        from capture.recorder import TakeRecorder

        if self.worker is None:
            self.start_preview()
        self.recorder = TakeRecorder(
            self.session_dir.text(),
            setup=self.setup.value(),
            performer=self.performer.value(),
            replication=self.replication.value(),
            camera=self.camera.value(),
            source=self.source_spec(),
        )
        self._record_started = time.monotonic()
        self.recording_changed.emit(True)

    def _finish_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        self._record_started = None
        if recorder is None:
            return
        try:
            names = recorder.close()
        except Exception as exc:
            self.show_message(describe_error(exc))
            names = []
        for name in names:
            self.clips.addItem(str(name))
        self.replication.setValue(self.replication.value() + 1)
        self.recording_changed.emit(False)
        self._refresh_status()

    # ---- misc --------------------------------------------------------------------------------
    @Slot(str)
    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.preview_button.setEnabled(not running)
        self.stop_button.setEnabled(running or self.record_button.isChecked())
        self.picker.setEnabled(not running)
