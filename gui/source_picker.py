"""Source picker shared by the Record and Live tabs: synthetic, NTU replay, Kinect MKV file, or
the Azure Kinect devices found; it produces a ``capture.source`` spec string."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from gui.workers import run_task
from xmkd.synth import PRESETS as SYNTH_PRESETS

KINDS = {
    "synthetic": "synthetic",
    "NTU replay (.skeleton file or folder)": "ntu",
    "Kinect MKV file": "mkv",
    "Azure Kinect device": "kinect",
}


def enumerate_kinect_devices() -> list[str]:
    """Names of the Azure Kinect devices attached ("0: serial ..."); [] when none.

    Raises the capture part's one-sentence error when the Kinect extra or SDK is missing.
    """
    from capture.kinect import list_devices

    return [f"{d['index']}: {d['serial']}" for d in list_devices()]


def compose_spec(kind: str, arg: str = "", options: dict[str, object] | None = None) -> str:
    """``kind[:arg][?k=v&...]`` as ``capture.source.parse_spec`` reads it."""
    spec = f"{kind}:{arg}" if arg else kind
    if options:
        spec += "?" + "&".join(f"{k}={v}" for k, v in options.items())
    return spec


class SourcePicker(QWidget):
    """Kind combo, a path (with Browse) for file sources, a device list for Kinect."""

    changed = Signal()
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.kind = QComboBox()
        self.kind.addItems(list(KINDS))
        form.addRow("source", self.kind)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("path")
        self.browse = QPushButton("Browse…")
        row.addWidget(self.path)
        row.addWidget(self.browse)
        self.path_row = QWidget()
        self.path_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("path", self.path_row)
        self.preset = QComboBox()
        self.preset.addItems(sorted(SYNTH_PRESETS, key=lambda p: p != "default"))
        self.preset.setToolTip("synthetic generator preset (its actions are the classes)")
        form.addRow("preset", self.preset)
        drow = QHBoxLayout()
        drow.setContentsMargins(0, 0, 0, 0)
        self.device = QComboBox()
        self.refresh = QPushButton("Find devices")
        drow.addWidget(self.device, 1)
        drow.addWidget(self.refresh)
        self.device_row = QWidget()
        self.device_row.setLayout(drow)
        form.addRow("device", self.device_row)
        self._form = form
        self._settings: dict[QWidget, tuple[tuple[str, ...], str]] = {}
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.path.textChanged.connect(self.changed)
        self.browse.clicked.connect(self._browse)
        self.refresh.clicked.connect(self.find_devices)
        self._kind_changed()

    def kind_key(self) -> str:
        return KINDS[self.kind.currentText()]

    def _kind_changed(self) -> None:
        key = self.kind_key()
        self._form.setRowVisible(self.path_row, key in ("ntu", "mkv"))
        self._form.setRowVisible(self.device_row, key == "kinect")
        self._form.setRowVisible(self.preset, key == "synthetic")
        if key == "kinect" and self.device.count() == 0:
            self.find_devices()
        self._enable_settings()
        self.changed.emit()

    def bind_settings(self, widgets: dict[QWidget, Iterable[str]]) -> None:
        """Enable each of ``widgets`` (sensor settings elsewhere in the tab) only while the
        chosen source kind is one of its kinds ("synthetic", "ntu", "mkv", "kinect"): a file
        source plays at what it was recorded with, and the synthetic source has no depth."""
        for widget, kinds in widgets.items():
            self._settings[widget] = (tuple(kinds), widget.toolTip())
        self._enable_settings()

    def _enable_settings(self) -> None:
        key = self.kind_key()
        for widget, (kinds, tip) in self._settings.items():
            on = key in kinds
            widget.setEnabled(on)
            reason = "the file's own" if key in ("ntu", "mkv") else f"not used by a {key} source"
            widget.setToolTip(tip if on else f"{tip + chr(10) if tip else ''}({reason})")

    def _browse(self) -> None:
        if self.kind_key() == "mkv":
            path, _ = QFileDialog.getOpenFileName(self, "Kinect recording", "", "MKV (*.mkv)")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "NTU skeleton file (cancel to pick a folder)", "", "Skeleton (*.skeleton)"
            )
            if not path:
                path = QFileDialog.getExistingDirectory(self, "Folder of .skeleton files")
        if path:
            self.path.setText(path)

    def find_devices(self) -> None:
        """Enumerate devices off the UI thread (opening the SDK can take a second)."""
        self.refresh.setEnabled(False)
        self.device.clear()

        def done(names: list[str]) -> None:
            self.device.addItems(names)
            self.message.emit(f"{len(names)} Azure Kinect device(s) found")

        run_task(
            lambda report, cancelled: enumerate_kinect_devices(),
            self,
            result=done,
            error=self.message.emit,
            finished=lambda: self.refresh.setEnabled(True),
        )

    def spec(self, options: dict[str, object] | None = None) -> str:
        key = self.kind_key()
        if key in ("ntu", "mkv"):
            return compose_spec(key, self.path.text().strip(), options)
        if key == "kinect":
            index = self.device.currentText().split(":", 1)[0].strip()
            return compose_spec(key, index, options)
        return compose_spec(key, self.preset.currentText(), options)
