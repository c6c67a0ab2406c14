"""Live tab: a capture source and an engine, the skeleton view, the top-5 class probabilities, a
timeline of predicted labels and latency / fps readouts.

The capture loop runs in a :class:`gui.workers.SourceWorker` thread and hands each frame to the
engines' streaming classifier (``engines.streaming.StreamingClassifier``), which runs the model
on its own worker thread; its predictions come back to the UI as queued signals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engines.choices import BACKEND_CHOICES, SMOOTHING_CHOICES
from gui.prob_bars import ProbBars
from gui.skeleton_view import SkeletonView
from gui.source_picker import SourcePicker
from gui.timeline import Timeline
from gui.workers import (
    LatestSlot,
    SourceWorker,
    describe_error,
    leave_a_core_for_the_ui,
    start_in_thread,
    wait_for_thread,
)

#: The Live tab's continual switch -> load_classifier's ``continual``.
CONTINUAL_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}
#: What the Live tab can run: students checkpoints, exported ONNX, TensorRT engines.
MODEL_SUFFIXES = (".pt", ".onnx", ".engine")
#: How many models the "found" list remembers from earlier runs of the window.
RECENT_MODELS = 10


def demo_students_dir() -> Path:
    """Where ``xmkd demo`` (run with its default ``--out``, from this working folder) writes
    its students checkpoint; read from the command's own parser, not repeated here."""
    import argparse

    from xmkd.commands import demo

    parser = argparse.ArgumentParser()
    demo.register(parser.add_subparsers())
    return Path(parser.parse_args(["demo"]).out) / "students"


def find_models(folders: Iterable[str | Path], recent: Iterable[str | Path] = ()) -> list[Path]:
    """The models in ``folders`` (their own files, not sub-folders) and the ``recent`` files
    that still exist, newest first (by modification time), each once."""
    found: dict[Path, float] = {}
    candidates: list[Path] = [Path(p) for p in recent]
    for folder in map(Path, folders):
        if folder.is_dir():
            candidates.extend(p for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES)
    for path in candidates:
        try:
            if path.suffix in MODEL_SUFFIXES and path.is_file():
                found[path.resolve()] = path.stat().st_mtime
        except OSError:  # vanished or unreadable since it was listed
            continue
    return sorted(found, key=lambda p: -found[p])


class PredictionRelay(QObject):
    """Receives the classifier's predictions in whatever thread it calls from and hands the
    newest one to the UI thread (one queued signal per prediction the UI will show)."""

    ready = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.slot = LatestSlot()
        self.count = 0

    def __call__(self, prediction: Any) -> None:
        self.count += 1
        if self.slot.put(prediction):
            self.ready.emit()


def load_classifier(
    model: str,
    engine: str,
    every: int,
    smoothing: str,
    on_prediction,
    continual: bool | None = None,
) -> Any:
    """Load the model into the chosen backend and wrap it in the engines' streaming classifier
    (started: its worker thread runs the model). ``continual``: True runs the continual step
    (engines.continual), False the whole window, None lets engine ``auto`` choose (as
    ``xmkd live --continual``)."""

    from engines.backends import ModelSource, choose_continual, open_backend
    from engines.continual import open_continual
    from engines.streaming import StreamingClassifier, StreamingConfig

    leave_a_core_for_the_ui()
    path = Path(model)
    source = (
        ModelSource.from_onnx(path) if path.suffix == ".onnx" else ModelSource.from_checkpoint(path)
    )
    if continual:
        from engines.continual import continual_reason
        from xmkd.errors import XmkdError

        # choose_continual names the command line's --continual; the tab names its switch
        reason = continual_reason(source)
        if reason is not None:
            raise XmkdError(f"continual on: {path.name} cannot run continually: {reason}")
    use_continual, why = choose_continual(continual, engine, source)
    if use_continual:
        backend = open_continual(engine, source)
        backend.selection = why
    else:
        backend = open_backend(engine, source)
        backend.warm_up()
        if why:
            backend.selection = f"{backend.selection}\n{why}".strip()
    config = StreamingConfig(every=every, smoothing=smoothing, top_k=5)
    classifier = StreamingClassifier(backend, config, on_prediction=on_prediction)
    classifier.description = (
        f"{backend.name}: {len(source.class_names)} classes, window {source.window} "
        f"({source.spec.fit}), every {every} frames"
    )
    if backend.selection:
        classifier.description += f"\n{backend.selection}"
    classifier.model_description = classifier.description
    # the live window (history, rate, bodies) and where it came from, as xmkd live says it
    classifier.description += f"\n{classifier.describe()}"
    return classifier.start()


class LiveWorker(SourceWorker):
    """A SourceWorker that first builds the streaming classifier (loading a model is file and
    compute work, so it happens in this thread too) and feeds it every frame."""

    classifier_ready = Signal(str)

    def __init__(
        self,
        spec: str,
        model: str,
        engine: str,
        every: int,
        smoothing: str,
        continual: bool | None = None,
    ):
        super().__init__(spec)
        self.model = model
        self.continual = continual
        self.engine = engine
        self.every = every
        self.smoothing = smoothing
        #: a child: deleted with the worker, after the classifier thread has stopped
        self.relay = PredictionRelay(self)
        self.classifier: Any = None

    @Slot()
    def run(self) -> None:
        try:
            self.classifier = load_classifier(
                self.model, self.engine, self.every, self.smoothing, self.relay, self.continual
            )
        except Exception as exc:
            self.error.emit(describe_error(exc))
            self.finished.emit()
            return
        self.consumers = [self.classifier.push]
        self.classifier_ready.emit(self.classifier.description)
        if self.open_fn is None:
            self.open_fn = self._open_at_source_rate
        super().run()

    def _open_at_source_rate(self, spec: str) -> Any:
        """The source, after telling the classifier its frame rate: the live window spans the
        training clips' duration at that rate (engines.streaming.plan_window)."""
        from capture.source import open_source

        source = open_source(spec)
        classifier = self.classifier
        classifier.set_source_fps(source.fps)
        classifier.description = f"{classifier.model_description}\n{classifier.describe()}"
        self.classifier_ready.emit(classifier.description)
        return source

    def wind_down(self) -> None:
        # The classifier's own worker thread ends here, before ``finished`` is emitted.
        self.classifier.stop()
        for message in self.classifier.errors[:1]:
            self.error.emit(f"classification failed: {message}")


class LiveTab(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker: LiveWorker | None = None
        self.relay: PredictionRelay | None = None
        self.predictions = 0
        self._t0 = time.monotonic()
        #: folders searched for models (the app adds the Distill tab's output folder)
        self.model_folders: Callable[[], list[Path]] = lambda: [demo_students_dir()]
        #: models used or made earlier, newest first (persisted by the app)
        self.recent_models: list[str] = []

        source_box = QGroupBox("Source")
        sl = QVBoxLayout(source_box)
        self.picker = SourcePicker()
        sl.addWidget(self.picker)
        engine_box = QGroupBox("Engine")
        ef = QFormLayout(engine_box)
        mrow = QHBoxLayout()
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("students checkpoint (.pt), .onnx or TensorRT engine")
        self.model_browse = QPushButton("…")
        self.model_browse.setFixedWidth(28)
        mrow.addWidget(self.model_path, 1)
        mrow.addWidget(self.model_browse)
        self.models = QComboBox()
        self.models.setToolTip(
            "models found: the Distill tab's output, xmkd demo's students, recently used ones "
            "(newest first)"
        )
        ef.addRow("found", self.models)
        ef.addRow("model", mrow)
        self.engine = QComboBox()
        self.engine.addItems(BACKEND_CHOICES)
        ef.addRow("backend", self.engine)
        self.smoothing = QComboBox()
        self.smoothing.addItems(SMOOTHING_CHOICES)
        # the streaming classifier's defaults, which xmkd live uses too
        from engines.streaming import StreamingConfig

        self.smoothing.setCurrentText(StreamingConfig.smoothing)
        ef.addRow("smoothing", self.smoothing)
        self.stride = QSpinBox()
        self.stride.setRange(1, 120)
        self.stride.setValue(StreamingConfig.every)
        self.stride.setToolTip("run the model every k frames")
        ef.addRow("every k frames", self.stride)
        self.continual = QComboBox()
        self.continual.addItems(list(CONTINUAL_CHOICES))
        self.continual.setToolTip(
            "continual inference: one small step per 4 frames and one state per body instead "
            "of the whole window per prediction (ST-GCN on 'pad' windows); auto: when the "
            "backend is auto and the model can run it"
        )
        ef.addRow("continual", self.continual)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        self.engine_status = QLabel("")
        self.engine_status.setWordWrap(True)
        controls = QVBoxLayout()
        controls.addWidget(source_box)
        controls.addWidget(engine_box)
        controls.addLayout(buttons)
        controls.addWidget(self.engine_status)
        controls.addStretch(1)
        left = QWidget()
        left.setLayout(controls)
        left.setMaximumWidth(380)

        self.skeleton = SkeletonView()
        self.current = QLabel("–")
        self.current.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.current.setStyleSheet("font-size: 20pt; font-weight: bold;")
        self.bars = ProbBars(5)
        self.timeline = Timeline(30.0)
        self.readout = QLabel("latency – ms   ·   capture – fps   ·   predictions –/s")
        self.readout.setObjectName("readout")
        right = QVBoxLayout()
        right.addWidget(self.skeleton, 3)
        right.addWidget(self.current)
        right.addWidget(self.bars, 1)
        right.addWidget(self.timeline)
        right.addWidget(self.readout)
        right_widget = QWidget()
        right_widget.setLayout(right)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right_widget)
        self.splitter.setStretchFactor(1, 1)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00;")
        outer = QVBoxLayout(self)
        outer.addWidget(self.splitter, 1)
        outer.addWidget(self.message)

        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.model_browse.clicked.connect(self._browse_model)
        self.models.activated.connect(self._model_chosen)
        self.picker.message.connect(self.show_message)
        self._fps = 0.0
        self._latency_ms: float | None = None
        self._update_buttons()

    def persistent_widgets(self) -> dict[str, QWidget]:
        return {
            "source_kind": self.picker.kind,
            "source_path": self.picker.path,
            "synthetic_preset": self.picker.preset,
            "model_path": self.model_path,
            "engine": self.engine,
            "stride": self.stride,
            "smoothing": self.smoothing,
            "continual": self.continual,
        }

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model", "", "Checkpoints and exports (*.pt *.onnx *.engine)"
        )
        if path:
            self.model_path.setText(path)

    # ---- models found ------------------------------------------------------------------------
    def refresh_models(self) -> list[Path]:
        """List the models found, newest first; an empty model field gets the newest."""
        found = find_models(self.model_folders(), self.recent_models)
        self.models.blockSignals(True)
        self.models.clear()
        for path in found:
            self.models.addItem(f"{path.name}  ({path.parent})", str(path))
            self.models.setItemData(self.models.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        if not found:
            self.models.addItem("none yet: distill, run xmkd demo, or browse", "")
        self.models.setEnabled(bool(found))
        current = self.model_path.text().strip()
        index = self.models.findData(str(Path(current).resolve())) if current else -1
        self.models.setCurrentIndex(max(index, 0))
        self.models.blockSignals(False)
        if found and not current:
            self.model_path.setText(str(found[0]))
        return found

    def offer_model(self, path: str) -> None:
        """A model just made (a distillation ended, an export): remember it, list it and make
        it the one the next Start uses."""
        self.remember_model(path)
        self.model_path.setText(str(Path(path).resolve()))
        self.refresh_models()

    def remember_model(self, path: str) -> None:
        path = str(Path(path).resolve())
        self.recent_models = [path] + [p for p in self.recent_models if p != path]
        del self.recent_models[RECENT_MODELS:]

    @Slot(int)
    def _model_chosen(self, index: int) -> None:
        path = self.models.itemData(index)
        if path:
            self.model_path.setText(path)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt naming)
        # A model may have appeared since (a distillation or a demo run in a terminal).
        if not self.is_running():
            self.refresh_models()
        super().showEvent(event)

    def is_running(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        if self.worker is not None:
            return
        model = self.model_path.text().strip()
        if not model or not Path(model).exists():
            self.show_message(
                f"choose a model first (not found: {model!r})"
                if model
                else "choose a model (checkpoint, .onnx or engine) first"
            )
            return
        problem = self.picker.problem()  # a missing estimator, model file or SDK
        if problem:
            self.show_message(problem)
            return
        self.show_message("")
        self.remember_model(model)
        self.timeline.clear()
        self.bars.clear()
        self.predictions = 0
        self._t0 = time.monotonic()
        worker = LiveWorker(
            self.picker.spec(),
            model,
            self.engine.currentText(),
            self.stride.value(),
            self.smoothing.currentText(),
            CONTINUAL_CHOICES[self.continual.currentText()],
        )
        self.relay = worker.relay
        self.relay.ready.connect(self._show_prediction)
        worker.frame_ready.connect(self._show_frame)
        worker.stats.connect(self._show_stats)
        worker.error.connect(self.show_message)
        worker.note.connect(self.show_message)
        worker.classifier_ready.connect(self.engine_status.setText)
        worker.finished.connect(self._worker_finished)
        self.worker = worker
        self.engine_status.setText("loading the model…")
        start_in_thread(worker, self)
        self._update_buttons()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def shutdown(self, timeout_ms: int = 3000) -> None:
        worker = self.worker
        self.stop()
        wait_for_thread(worker, timeout_ms)

    @Slot()
    def _worker_finished(self) -> None:
        self.worker = None
        self.relay = None
        self._update_buttons()

    @Slot()
    def _show_frame(self) -> None:
        if self.worker is None:
            return
        view = self.worker.slot.take()
        if view is not None:
            self.skeleton.set_bodies(view.joints)

    @Slot(dict)
    def _show_stats(self, stats: dict) -> None:
        self._fps = stats.get("fps", 0.0)
        self._refresh_readout()

    @Slot()
    def _show_prediction(self) -> None:
        relay = self.relay
        if relay is None:
            return
        prediction = relay.slot.take()
        if prediction is None:
            return
        self.predictions += 1
        top = list(zip(prediction.labels, prediction.probs))
        self.bars.set_probabilities(top)
        if top:
            self.current.setText(f"{top[0][0]}  ({100 * top[0][1]:.0f}%)")
            self.timeline.add(prediction.timestamp, top[0][0])
        self._latency_ms = 1000.0 * prediction.latency_s
        self._refresh_readout()

    def _refresh_readout(self) -> None:
        elapsed = max(1e-6, time.monotonic() - self._t0)
        latency = f"{self._latency_ms:.0f}" if self._latency_ms is not None else "–"
        self.readout.setText(
            f"latency {latency} ms   ·   capture {self._fps:.1f} fps   ·   "
            f"predictions {self.predictions / elapsed:.1f}/s"
        )

    @Slot(str)
    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.picker.setEnabled(not running)
