"""The xmkd desktop app: a main window with one tab per job (Record, Distill, Live, Replay).

Settings (every field of every tab) and the window layout (geometry, splitters, current tab)
persist through QSettings; see :mod:`gui.settings`. Closing the window stops capture threads and
the distillation child process before the settings are written.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QSplitter, QTabWidget, QWidget

from gui.distill_tab import DistillTab
from gui.live_tab import LiveTab, demo_students_dir
from gui.record_tab import RecordTab
from gui.replay_tab import ReplayTab
from gui.settings import open_settings, restore_list, restore_widgets, save_widgets

TAB_NAMES = ("record", "distill", "live", "replay")


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings if settings is not None else open_settings()
        self.setWindowTitle("xmkd: cross-modal knowledge distillation")
        self.tabs = QTabWidget()
        self.record = RecordTab()
        self.distill = DistillTab()
        self.live = LiveTab()
        self.replay = ReplayTab()
        for name, tab in zip(TAB_NAMES, self.all_tabs()):
            self.tabs.addTab(tab, name.capitalize())
        self.setCentralWidget(self.tabs)
        # One click from a finished distillation or export to classifying with it: the Live
        # tab lists the models of the Distill tab's output folder and the demo's.
        self.live.model_folders = lambda: [Path(self.distill.out_dir.text()), demo_students_dir()]
        self.distill.trained.connect(self.live.offer_model)
        self.distill.exported.connect(self.live.offer_model)
        self.distill.exported.connect(self.replay.model_path.setText)
        self.resize(1280, 800)
        self.restore()
        self.record.list_session_clips()

    def all_tabs(self) -> list[QWidget]:
        return [self.record, self.distill, self.live, self.replay]

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TAB_NAMES.index(name))

    # ---- persistence -------------------------------------------------------------------------
    def _splitters(self) -> dict[str, QSplitter]:
        found = {}
        for name, tab in zip(TAB_NAMES, self.all_tabs()):
            for i, splitter in enumerate(tab.findChildren(QSplitter)):
                found[f"{name}/splitter{i}"] = splitter
        return found

    def restore(self) -> None:
        s = self.settings
        for name, tab in zip(TAB_NAMES, self.all_tabs()):
            restore_widgets(s, name, tab.persistent_widgets())
        self.live.recent_models = restore_list(s, "live/recent_models")
        self.live.refresh_models()
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        for key, splitter in self._splitters().items():
            value = s.value(f"layout/{key}")
            if isinstance(value, QByteArray):
                splitter.restoreState(value)
        try:
            self.tabs.setCurrentIndex(int(s.value("window/tab", 0)))
        except (TypeError, ValueError):
            pass

    def save(self) -> None:
        s = self.settings
        for name, tab in zip(TAB_NAMES, self.all_tabs()):
            save_widgets(s, name, tab.persistent_widgets())
        s.setValue("live/recent_models", list(self.live.recent_models))
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.currentIndex())
        for key, splitter in self._splitters().items():
            s.setValue(f"layout/{key}", splitter.saveState())
        s.sync()

    def shutdown(self) -> None:
        """Stop every background job (capture threads, child processes, timers)."""
        for tab in self.all_tabs():
            tab.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        self.save()
        super().closeEvent(event)


def main(
    argv: Sequence[str] | None = None, settings_path: str | None = None, tab: str | None = None
) -> int:
    """Start the app (``xmkd gui``); returns the Qt exit code."""
    import pyqtgraph as pg

    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("xmkd")
    app.setOrganizationName("xmkd")
    pg.setConfigOptions(antialias=True)
    window = MainWindow(open_settings(settings_path))
    if tab:
        window.show_tab(tab)
    window.show()
    # Ctrl+C in the terminal closes the window cleanly (jobs stopped, settings saved): Python
    # handles signals only when it runs, so a timer lets it run a few times a second.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(250)
    return int(app.exec())
