"""Distill tab: from sessions and a teacher to a model in the Live tab, as one background job.

The job runs ``xmkd label`` (the teacher picked in :mod:`gui.teacher_picker` labels the clips),
``xmkd distill`` and ``xmkd export`` one after another in child processes (:mod:`gui.pipeline`),
with the stages shown as they advance, their JSON-lines progress (progress bar with ETA, live
curves of the losses, the agreement with the teacher and the validation accuracy), Cancel, and
Resume at any stage, also after the app was closed (the stages' state is kept in the output
folder). A label cache made earlier can stand in for the label stage; when the job ends the new
model is offered in the Live tab (``trained`` / ``exported``). Before the long job, Preview runs
the teacher on a few clips and shows its top classes, so that a wrong class map shows at once.

Every stage runs as a child process (QProcess), never in the GUI process: a crash there ends only
that process, and its last error line is shown here.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import pipeline as jobs
from gui.curves import Curves
from gui.pipeline import Pipeline, PipelineState
from gui.teacher_picker import TeacherPicker
from gui.workers import JsonLinesProcess, xmkd_command
from xmkd.errors import XmkdError

ARCH_CHOICES = ("stgcn", "hcn", "stgcn + hcn (alternating)")
LOSS_CHOICES = (
    "CE + mutual (paper)",
    "CE (ensemble, no mutual)",
    "KL with tau",
    "full supervision",
)
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: The preset choice that lets the data decide, as ``xmkd distill`` does without ``--preset``.
PRESET_FROM_DATA = "from the data"
PRESET_CHOICES = (PRESET_FROM_DATA, "paper", "synthetic")


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "ETA --"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"ETA {h:d}:{m:02d}:{s:02d}" if h else f"ETA {m:d}:{s:02d}"


def _path_row(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    button.setFixedWidth(28)
    row.addWidget(button)
    return row


#: How each stage status is shown in the stage strip: (text after the stage's name, colour).
STAGE_LOOK = {
    "pending": ("", "#777"),
    "running": ("running", "#1565c0"),
    "done": ("done", "#2e7d32"),
    "cancelled": ("cancelled", "#e65100"),
    "failed": ("failed", "#b00"),
    "skipped": ("skipped", "#aaa"),
}
#: What each stage does, for the strip's tooltips.
STAGE_HELP = {
    "label": "xmkd label: the teacher labels the clips (skipped with a label cache given)",
    "distill": "xmkd distill: the skeleton students learn from the teacher's labels",
    "export": "xmkd export: the students as one ONNX model for the Live and Replay tabs",
}


class StageStrip(QWidget):
    """label -> distill -> export, each stage's name with its status."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.labels: dict[str, QLabel] = {}
        for i, name in enumerate(jobs.STAGES):
            if i:
                row.addWidget(QLabel("→"))
            label = QLabel()
            label.setToolTip(STAGE_HELP[name])
            self.labels[name] = label
            row.addWidget(label)
        row.addStretch(1)
        self.statuses: dict[str, str] = {}
        self.show_statuses({name: "pending" for name in jobs.STAGES})

    def show_statuses(self, statuses: dict[str, str]) -> None:
        self.statuses = dict(statuses)
        for name, label in self.labels.items():
            status = statuses.get(name, "skipped")
            text, colour = STAGE_LOOK.get(status, ("", "#777"))
            number = jobs.STAGES.index(name) + 1
            shown = f"{number} {name}" + (f": {text}" if text else "")
            weight = "bold" if status == "running" else "normal"
            strike = "line-through" if status == "skipped" else "none"
            label.setText(shown)
            label.setStyleSheet(
                f"color: {colour}; font-weight: {weight}; text-decoration: {strike};"
            )


class DistillTab(QWidget):
    #: path of the exported model (ONNX) after a successful export
    exported = Signal(str)
    #: path of the students checkpoint after a distillation ended successfully
    trained = Signal(str)

    def __init__(self, parent: QWidget | None = None, program: tuple[str, list[str]] | None = None):
        super().__init__(parent)
        #: (program, leading args) that run the ``xmkd`` CLI; tests may point it elsewhere
        self.program = program or xmkd_command()
        self.pipeline = Pipeline(self, self.program)
        self.job = self.pipeline.job
        self.job.event.connect(self.on_event)
        self.job.output.connect(self._log_line)
        self.job.started.connect(self._update_buttons)  # each stage's child (Cancel on)
        self.pipeline.stage_started.connect(self._stage_started)
        self.pipeline.stage_finished.connect(self._stage_finished)
        self.pipeline.finished.connect(self._pipeline_finished)
        self.preview_job = JsonLinesProcess(self)
        self.preview_job.event.connect(self._preview_event)
        self.preview_job.finished.connect(self._preview_finished)
        self.job_kind = ""  # "label" | "distill" | "export"
        #: the distill stage's progress events (of this run and its resumptions)
        self.events: list[dict[str, Any]] = []
        #: the label stage's progress events
        self.label_events: list[dict[str, Any]] = []
        #: the preview's clips (one object per clip, as ``xmkd label --preview N --json``)
        self.preview_rows: list[dict[str, Any]] = []
        self.finished_ok = False
        self.epochs_total = 0
        self.steps_per_epoch = 0
        self.best_checkpoint: str | None = None
        self._export_target: Path | None = None
        self._stepped_epochs: set[int] = set()

        teacher_box = QGroupBox("Teacher")
        teacher_layout = QVBoxLayout(teacher_box)
        self.teacher = TeacherPicker()
        teacher_layout.addWidget(self.teacher)
        preview_row = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip(
            "run the teacher on a few clips of the data below and show its top classes "
            "(catches a wrong class map before the long job)"
        )
        self.preview_clips = QSpinBox()
        self.preview_clips.setRange(1, 64)
        self.preview_clips.setValue(6)
        self.preview_clips.setSuffix(" clips")
        preview_row.addWidget(self.preview_button)
        preview_row.addWidget(self.preview_clips)
        preview_row.addStretch(1)
        teacher_layout.addLayout(preview_row)

        form_box = QGroupBox("Distillation")
        form = QFormLayout(form_box)
        self.data_kind = QComboBox()
        self.data_kind.addItems(["sessions", "packed NTU"])
        form.addRow("data", self.data_kind)
        self.data_path = QLineEdit()
        self.data_path.setPlaceholderText("session folders (separate with ;) or packed NTU folder")
        self.data_browse = QPushButton("…")
        form.addRow("path(s)", _path_row(self.data_path, self.data_browse))
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("empty: the teacher above labels the clips")
        self.labels.setToolTip(
            "a label cache made earlier (xmkd label) instead of the label stage; empty: the "
            "teacher above labels the clips into the output folder (labels.pt)"
        )
        self.labels_browse = QPushButton("…")
        form.addRow("label cache", _path_row(self.labels, self.labels_browse))
        self.arch = QComboBox()
        self.arch.addItems(ARCH_CHOICES)
        form.addRow("students", self.arch)
        self.k = QSpinBox()
        self.k.setRange(1, 8)
        self.k.setValue(2)
        form.addRow("K", self.k)
        self.width = QDoubleSpinBox()
        self.width.setRange(0.0, 1.0)
        self.width.setSingleStep(0.05)
        self.width.setDecimals(3)  # 0.125 (an eighth) must not become 0.13
        self.width.setSpecialValueText("preset")
        self.width.setValue(0.0)
        self.width.setToolTip(
            "student channel width (1 = the reference size; 'preset': the preset's choice)"
        )
        form.addRow("width", self.width)
        self.loss = QComboBox()
        self.loss.addItems(LOSS_CHOICES)
        form.addRow("loss", self.loss)
        self.tau = QDoubleSpinBox()
        self.tau.setRange(0.5, 50.0)
        self.tau.setValue(10.0)
        form.addRow("KL tau", self.tau)
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 1000)
        self.epochs.setSpecialValueText("preset")
        self.epochs.setValue(0)
        form.addRow("epochs", self.epochs)
        self.batch = QSpinBox()
        self.batch.setRange(0, 4096)
        self.batch.setSpecialValueText("preset")
        form.addRow("batch size", self.batch)
        self.device = QComboBox()
        self.device.addItems(DEVICE_CHOICES)
        self.device.setToolTip("where the teacher and the students run")
        form.addRow("device", self.device)
        self.precision = QComboBox()
        self.precision.addItems(["fp32", "bf16"])
        self.precision.setToolTip(
            "bf16: the students' forward pass in bfloat16 on an Ampere-or-newer GPU (ST-GCN "
            "about 1.25x faster on an H200; HCN gains nothing)"
        )
        form.addRow("precision", self.precision)
        self.deterministic = QCheckBox("bit-identical on a GPU (about 5% slower)")
        self.deterministic.setToolTip(
            "deterministic cuDNN/cuBLAS kernels: a repeated or resumed GPU run gives the same "
            "weights; CPU runs are reproducible without it"
        )
        form.addRow("deterministic", self.deterministic)
        self.preset = QComboBox()
        self.preset.addItems(PRESET_CHOICES)
        self.preset.setToolTip(
            "defaults of xmkd distill: the paper's (ST-GCN 200 epochs, batch 16, 300-frame "
            "windows) or CPU-sized for the synthetic data; 'from the data': synthetic for "
            "synthetic sessions, else the paper's"
        )
        form.addRow("preset", self.preset)
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: #555;")
        form.addRow("", self.preset_note)
        self.split = QComboBox()
        self.split.addItems(["student_train", "all", "teacher_train"])
        self.split.setToolTip(
            "clips to label and train on: the paper's Student-Train split, or every clip (your "
            "own unlabeled recordings)"
        )
        form.addRow("split", self.split)
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("more xmkd distill flags, e.g. --lr 0.05 --window 64")
        form.addRow("more flags", self.extra)
        self.out_dir = QLineEdit(str(Path("runs") / "distill"))
        self.out_dir.setToolTip(
            "the run folder: label cache, checkpoints, exported model and the job's state "
            "(pipeline.json, for Resume)"
        )
        self.out_browse = QPushButton("…")
        form.addRow("output", _path_row(self.out_dir, self.out_browse))

        export_box = QGroupBox("Export")
        export_form = QFormLayout(export_box)
        self.export_when_done = QCheckBox("export when distilled (part of the job)")
        self.export_when_done.setChecked(True)
        self.export_when_done.setToolTip(
            "after distillation, export the students as one ONNX model and offer it in the "
            "Live tab; off: the students checkpoint is offered, Export exports it later"
        )
        export_form.addRow("", self.export_when_done)
        self.trt = QCheckBox("TensorRT engine too (needs a GPU)")
        export_form.addRow("engine", self.trt)
        self.export_extra = QLineEdit()
        self.export_extra.setPlaceholderText("more xmkd export flags, e.g. --fp16")
        self.export_extra.setToolTip(
            "e.g. --fp16, --ensemble max, --check-data DIR (parity on real skeletons)"
        )
        export_form.addRow("more flags", self.export_extra)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip(
            "run the job: label (unless a cache is given), distill, export"
        )
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("continue the output folder's job at the stage it stopped")
        self.export_button = QPushButton("Export / build engine")
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        settings = QWidget()
        settings_layout = QVBoxLayout(settings)
        settings_layout.setContentsMargins(0, 0, 6, 0)  # clear of the scroll bar
        settings_layout.addWidget(teacher_box)
        settings_layout.addWidget(form_box)
        settings_layout.addWidget(export_box)
        settings_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(settings)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(scroll, 1)
        left.addLayout(buttons)
        left.addWidget(self.export_button)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMinimumWidth(360)
        left_widget.setMaximumWidth(460)

        self.stages = StageStrip()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)  # (a bar without a value shows no text)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.eta = QLabel("ETA --")
        self.rate = QLabel("")
        prow = QHBoxLayout()
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.eta)
        prow.addWidget(self.rate)
        preview_box = QWidget()
        preview_layout = QVBoxLayout(preview_box)
        self.preview_status = QLabel(
            "Preview (under Teacher) runs the teacher on a few clips of the data and lists its "
            "top classes and the label each clip would get: a wrong class map shows here "
            "before the long job."
        )
        self.preview_status.setWordWrap(True)
        self.preview_table = QTableWidget(0, 4)
        self.preview_table.setHorizontalHeaderLabels(["clip", "true", "teacher's top 3", "label"])
        self.preview_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview_table.verticalHeader().setVisible(False)
        header = self.preview_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        preview_layout.addWidget(self.preview_status)
        preview_layout.addWidget(self.preview_table, 1)
        self.curves = Curves()
        # the curves while a job runs, the preview before it: each gets the whole height
        self.views = QTabWidget()
        self.views.addTab(self.curves, "Training curves")
        self.views.addTab(preview_box, "Teacher preview")
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMaximumHeight(110)
        self.log.setPlaceholderText("the commands' output")
        right = QVBoxLayout()
        right.addWidget(self.stages)
        right.addLayout(prow)
        right.addWidget(self.views, 1)
        right.addWidget(self.error)
        right.addWidget(self.log)
        right_widget = QWidget()
        right_widget.setLayout(right)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left_widget)
        self.splitter.addWidget(right_widget)
        self.splitter.setStretchFactor(1, 1)
        outer = QVBoxLayout(self)
        outer.addWidget(self.splitter)

        self.start_button.clicked.connect(lambda: self.start(resume=False))
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(self.export)
        self.preview_button.clicked.connect(self.preview)
        self.data_browse.clicked.connect(self._browse_data)
        self.labels_browse.clicked.connect(self._browse_labels)
        self.out_browse.clicked.connect(self._browse_out)
        for signal in (
            self.loss.currentIndexChanged,
            self.out_dir.textChanged,
            self.labels.textChanged,
            self.export_when_done.toggled,
        ):
            signal.connect(self._update_buttons)
        for signal in (
            self.preset.currentIndexChanged,
            self.data_kind.currentIndexChanged,
            self.data_path.textChanged,
        ):
            signal.connect(self._show_preset)
        self._update_buttons()
        self._show_preset()

    # ---- settings --------------------------------------------------------------------------
    def persistent_widgets(self) -> dict[str, QWidget]:
        return {
            **self.teacher.persistent_widgets(),
            "preview_clips": self.preview_clips,
            "data_kind": self.data_kind,
            "data_path": self.data_path,
            "labels": self.labels,
            "arch": self.arch,
            "k": self.k,
            "width": self.width,
            "loss": self.loss,
            "tau": self.tau,
            "epochs": self.epochs,
            "batch": self.batch,
            "device": self.device,
            "precision": self.precision,
            "deterministic": self.deterministic,
            "preset": self.preset,
            "split": self.split,
            "extra": self.extra,
            "out_dir": self.out_dir,
            "export_when_done": self.export_when_done,
            "trt": self.trt,
            "export_extra": self.export_extra,
        }

    # ---- command lines -----------------------------------------------------------------------
    def students(self) -> list[str]:
        k = self.k.value()
        choice = self.arch.currentText()
        if choice.startswith("stgcn +"):
            return [("stgcn", "hcn")[i % 2] for i in range(k)]
        return [choice] * k

    def run_dir(self) -> Path:
        return Path(self.out_dir.text())

    def last_checkpoint(self) -> Path:
        """Where ``xmkd distill`` keeps the checkpoint it resumes from (every epoch)."""
        return self.run_dir() / "last.pt"

    def export_checkpoint(self) -> Path:
        """The checkpoint to export: the run's best (its validation), else the last one."""
        if self.best_checkpoint and Path(self.best_checkpoint).is_file():
            return Path(self.best_checkpoint)
        return jobs.export_checkpoint(self.run_dir())

    def data_paths(self) -> tuple[list[str], str | None]:
        """(session folders, packed NTU folder or None) of the form."""
        paths = [p.strip() for p in self.data_path.text().split(";") if p.strip()]
        if self.data_kind.currentText() == "sessions":
            return paths, None
        return [], (paths[0] if paths else None)

    def data_args(self) -> list[str]:
        """--sessions DIR.. or --packed DIR, and the split (shared by label and distill)."""
        sessions, packed = self.data_paths()
        args = []
        if sessions:
            args += ["--sessions", *sessions]
        elif packed:
            args += ["--packed", packed]
        return args

    def chosen_preset(self) -> tuple[str, str]:
        """The preset the run will use and why: the one picked here, or (``from the data``)
        the one ``xmkd distill`` chooses for the selected data. Raises the XmkdError of a
        session folder that cannot be read."""
        if self.preset.currentText() != PRESET_FROM_DATA:
            return self.preset.currentText(), "chosen here"
        from xmkd.commands._train_common import choose_preset

        sessions, packed = self.data_paths()
        return choose_preset(None, sessions, packed)

    @Slot()
    def _show_preset(self) -> None:
        try:
            preset, why = self.chosen_preset()
        except XmkdError as exc:
            self.preset_note.setText(f"preset: chosen when the data can be read ({exc})")
            return
        self.preset_note.setText(f"preset {preset}: {why}")

    def label_stage_needed(self) -> bool:
        """The job starts with the teacher labeling the clips: no label cache was given and
        the loss learns from a teacher (full supervision uses the data's own labels)."""
        return not self.labels.text().strip() and self.loss.currentIndex() != 3

    def labels_file(self) -> str:
        """The label cache distillation reads: the one given, else the label stage's."""
        given = self.labels.text().strip()
        if given:
            return given
        return str(jobs.labels_path(self.run_dir())) if self.label_stage_needed() else ""

    def label_args(self) -> list[str]:
        """The ``xmkd label`` arguments of the label stage (progress as JSON lines on stdout).
        Raises ValueError for unbalanced quotes in the teacher's extra flags."""
        return [
            "label",
            *self.teacher.args(),
            "--out",
            str(jobs.labels_path(self.run_dir())),
            *self.data_args(),
            "--split",
            self.split.currentText(),
            "--device",
            self.device.currentText(),
            "--progress-json",
            "-",
        ]

    def preview_args(self) -> list[str]:
        """``xmkd label ... --preview N --json``: the teacher on N clips, nothing written."""
        return [
            "label",
            *self.teacher.args(),
            *self.data_args(),
            "--split",
            self.split.currentText(),
            "--device",
            self.device.currentText(),
            "--preview",
            str(self.preview_clips.value()),
            "--json",
        ]

    def export_args(self) -> list[str]:
        """The export stage's options (the checkpoint is chosen when it starts)."""
        fmt = "tensorrt" if self.trt.isChecked() else "onnx"
        return ["--format", fmt, *shlex.split(self.export_extra.text())]

    def distill_args(self, resume: bool = False) -> list[str]:
        """The ``xmkd distill`` arguments for the form (progress as JSON lines on stdout)."""
        args = ["distill", *self.data_args()]
        labels = self.labels_file()
        if labels:
            args += ["--labels", labels]
        args += ["--students", *self.students()]
        if self.width.value() > 0:
            args += ["--width", f"{self.width.value():g}"]
        loss = self.loss.currentIndex()
        args += ["--supervision", ("ce", "ce", "kl", "full")[loss]]
        if loss in (1, 2):
            args += ["--no-mutual"]
        if loss == 2:
            args += ["--tau", f"{self.tau.value():g}"]
        if self.epochs.value():
            args += ["--epochs", str(self.epochs.value())]
        if self.batch.value():
            args += ["--batch-size", str(self.batch.value())]
        args += ["--device", self.device.currentText(), "--out", self.out_dir.text()]
        if self.precision.currentText() != "fp32":
            args += ["--precision", self.precision.currentText()]
        if self.deterministic.isChecked():
            args += ["--deterministic"]
        # The preset is always explicit: the run uses what the form says it will.
        args += ["--preset", self.chosen_preset()[0], "--split", self.split.currentText()]
        args += shlex.split(self.extra.text())
        args += ["--progress-json", "-"]
        if resume:
            args += ["--resume"]
        return args

    def plan(self) -> PipelineState:
        """The job the form describes: label (unless a cache is given), distill, export (when
        asked). Raises XmkdError (data, teacher) or ValueError (quotes in extra flags) with
        the sentence to show."""
        try:
            distill = self.distill_args()
        except XmkdError as exc:  # a data folder that is not a session
            raise XmkdError(f"data: {exc}") from exc
        except ValueError as exc:  # unbalanced quotes in "more flags"
            raise XmkdError(f"more flags: {exc}") from exc
        label = None
        if self.label_stage_needed():
            problem = self.teacher.problem()
            if problem:
                raise XmkdError(f"{problem} (or give a label cache made earlier with xmkd label)")
            label = self.label_args()
        try:
            export = self.export_args() if self.export_when_done.isChecked() else None
        except ValueError as exc:
            raise XmkdError(f"export flags: {exc}") from exc
        return jobs.plan(self.run_dir(), distill, label, export)

    # ---- running -----------------------------------------------------------------------------
    def start(self, resume: bool = False) -> None:
        """Start the job the form describes, or (``resume``) continue the output folder's."""
        if self.pipeline.is_running():
            return
        try:
            stored = PipelineState.load(self.run_dir())
        except XmkdError as exc:  # a broken state file: never guess what the job was
            self.error.setText(str(exc))
            return
        if not resume and (stored is not None or self.last_checkpoint().is_file()):
            # never overwrite a run (its checkpoints are hours of work)
            held = jobs.STATE_FILE if stored is not None else "last.pt"
            self.error.setText(
                f"{self.out_dir.text()} already holds a run ({held}): Resume it, or choose "
                "another output folder for a new run"
            )
            return
        self.error.setText("")
        if resume and stored is not None:
            state = stored
            self.log.appendPlainText(
                f"resuming the job of {state.path} at {getattr(state.next_stage(), 'name', '-')}"
            )
        else:
            try:
                state = self.plan()
            except XmkdError as exc:
                self.error.setText(str(exc))
                return
            if resume:  # a run made elsewhere (xmkd distill): its distillation resumes
                state.stages = [s for s in state.stages if s.name != "label"]
        if not resume:
            self.curves.clear()
            self.events.clear()
            self.label_events.clear()
            self.best_checkpoint = None
            self._stepped_epochs.clear()
        self.finished_ok = False
        self.pipeline.program = self.program
        self.pipeline.start(state)
        self._update_buttons()

    def cancel(self) -> None:
        if self.pipeline.is_running():
            self.progress.setFormat("cancelling…")
            self.pipeline.cancel()

    def export(self) -> None:
        """Export the trained ensemble to ONNX (and a TensorRT engine when asked)."""
        if self.pipeline.is_running():
            return
        try:
            args = self.export_args()
        except ValueError as exc:
            self.error.setText(f"export flags: {exc}")
            return
        try:
            state = PipelineState.load(self.run_dir()) or PipelineState(self.run_dir())
        except XmkdError as exc:
            self.error.setText(str(exc))
            return
        stage = state.stage("export")
        if stage is None:
            stage = jobs.Stage("export", args)
            state.stages.append(stage)
        stage.args, stage.status, stage.message = args, "pending", ""
        self.error.setText("")
        self.pipeline.program = self.program
        self.pipeline.start(state, only="export")
        self._update_buttons()

    @Slot(str, list)
    def _stage_started(self, name: str, args: list[str]) -> None:
        self.job_kind = name
        self.log.appendPlainText(f"$ xmkd {shlex.join(args)}")
        self.eta.setText("ETA --")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        if name == "label":
            self.progress.setFormat("labeling: starting the teacher…")
        elif name == "distill":
            self.progress.setFormat("resuming…" if "--resume" in args else "starting…")
            self.views.setCurrentIndex(0)
        else:
            fmt = args[args.index("--format") + 1] if "--format" in args else "onnx"
            self._export_target = jobs.export_target(args[1])
            self.progress.setFormat(f"exporting ({fmt})…")
            self.progress.setRange(0, 0)  # busy indicator: export reports no steps
        self._show_stages()
        self._update_buttons()

    @Slot(dict)
    def on_event(self, event: dict[str, Any]) -> None:
        """Apply one progress event of the running stage: ``xmkd label --progress-json -``
        (start, progress, done) or ``xmkd distill --progress-json -`` (schema in
        :mod:`xmkd.train.progress`: start, step, epoch, end)."""
        if self.job_kind == "label":
            self._label_event(event)
            return
        if self.job_kind != "distill":
            return
        self.events.append(event)
        kind = event.get("event")
        if kind == "start":
            self.epochs_total = int(event.get("epochs") or 0)
            self.steps_per_epoch = int(event.get("steps_per_epoch") or 0)
            start = int(event.get("start_epoch") or 0)
            self._set_fraction(start / self.epochs_total if self.epochs_total else 0.0, start)
            if event.get("resumed_from"):
                self.log.appendPlainText(f"resumed from {event['resumed_from']}")
            return
        if kind == "end":
            self.best_checkpoint = event.get("checkpoint") or self.best_checkpoint
            best = event.get("best")
            if best is not None:
                self.rate.setText(f"best {100 * best:.1f}% (epoch {event.get('best_epoch')})")
            return
        epoch = event.get("epoch")  # 1-based
        if epoch is None or kind not in ("step", "epoch"):
            return
        if kind == "step" and self.steps_per_epoch:
            within = (int(event.get("step") or 0) - 1) % self.steps_per_epoch + 1
            x = epoch - 1 + within / self.steps_per_epoch
        else:
            x = float(epoch)
        if self.epochs_total:
            self._set_fraction(x / self.epochs_total, epoch if kind == "epoch" else epoch - 1)
        if event.get("eta_s") is not None:
            self.eta.setText(format_eta(event["eta_s"]))
        if event.get("samples_per_s") is not None:
            self.rate.setText(f"{event['samples_per_s']:.0f} samples/s")
        # Losses and agreement: the step events' values as they come; an epoch's mean only
        # when that epoch had no step event (short epochs), so the two never interleave.
        if kind == "step":
            self._stepped_epochs.add(epoch)
        if kind == "step" or epoch not in self._stepped_epochs:
            for student, parts in (event.get("losses") or {}).items():
                total = parts.get("total") if isinstance(parts, dict) else parts
                if total is not None:
                    self.curves.add("loss", student, x, total)
            for i, agreement in enumerate(event.get("teacher_agreement") or []):
                if agreement is not None:
                    self.curves.add("teacher agreement", f"student{i}", x, agreement)
        for name, value in (event.get("val") or {}).items():
            if value is not None:
                self.curves.add("validation accuracy", name, x, value)

    def _label_event(self, event: dict[str, Any]) -> None:
        self.label_events.append(event)
        kind = event.get("event")
        if kind in ("start", "progress"):
            done, total = int(event.get("done") or 0), int(event.get("total") or 0)
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(round(1000 * done / total)) if total else 0)
            self.progress.setFormat(f"labeling: {done}/{total} clips  %p%")
            if event.get("eta_s") is not None:
                self.eta.setText(format_eta(event["eta_s"]))
            if event.get("clips_per_s") is not None:
                self.rate.setText(f"{event['clips_per_s']:.1f} clips/s")
        elif kind == "done":
            self.log.appendPlainText(jobs.summary(event))
            if event.get("accuracy") is not None:
                self.rate.setText(f"teacher {100 * float(event['accuracy']):.1f}% right")

    def _set_fraction(self, fraction: float, epochs_done: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.progress.setFormat(f"epoch {epochs_done}/{self.epochs_total}  %p%")

    @Slot(str)
    def _log_line(self, line: str) -> None:
        self.log.appendPlainText(line)

    @Slot(str, str, str)
    def _stage_finished(self, kind: str, status: str, message: str) -> None:
        self.progress.setRange(0, 1000)
        if message:
            self.error.setText(f"xmkd {kind}: {message}")
            self.progress.setFormat(f"{kind} {'cancelled' if message == 'cancelled' else 'failed'}")
        elif kind == "label":
            self.progress.setValue(1000)
            self.progress.setFormat("labeled")
        elif kind == "distill":
            self.finished_ok = True
            self.progress.setValue(1000)
            self.progress.setFormat("finished: ready to export")
            self.eta.setText("ETA 0:00")
            if self.export_checkpoint().is_file():
                self.trained.emit(str(self.export_checkpoint()))
        else:
            self.progress.setValue(1000)
            self.progress.setFormat(f"{kind} done")
            target = self._export_target
            if kind == "export" and target is not None and target.is_file():
                self.progress.setFormat(f"exported {target.name}: ready for Live and Replay")
                self.exported.emit(str(target))
        self.log.appendPlainText(f"[{kind} {status}]")
        self._show_stages()
        self._update_buttons()

    @Slot(bool, str)
    def _pipeline_finished(self, ok: bool, message: str) -> None:
        state = self.pipeline.state
        export = state.stage("export") if state is not None else None
        model = self._export_target
        if ok and self.pipeline.only is None and export is not None and model is not None:
            if model.is_file():  # (a job without export says "ready to export")
                self.progress.setFormat(f"done: {model.name} offered in the Live tab")
        self._show_stages()
        self._update_buttons()

    def _show_stages(self) -> None:
        """The stage strip: the output folder's job, else the one Start would run."""
        state = self.pipeline.state if self.pipeline.is_running() else None
        if state is None:
            try:
                state = PipelineState.load(self.run_dir())
            except XmkdError:
                state = None
        if state is None:
            planned = {"distill": "pending"}
            if self.label_stage_needed():
                planned["label"] = "pending"
            if self.export_when_done.isChecked():
                planned["export"] = "pending"
            self.stages.show_statuses({n: planned.get(n, "skipped") for n in jobs.STAGES})
        else:
            self.stages.show_statuses(jobs.describe(state))

    def _update_buttons(self) -> None:
        running = self.pipeline.is_running()
        try:
            stored = PipelineState.load(self.run_dir())
        except XmkdError:
            stored = None
        # a job of this app resumes until it is complete; a run of xmkd distill alone
        # (no job state) while it has its last checkpoint
        resumable = (
            not stored.complete() if stored is not None else self.last_checkpoint().is_file()
        )
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running and resumable)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and self.export_checkpoint().is_file())
        self.tau.setEnabled(self.loss.currentIndex() == 2)
        self.labels.setEnabled(self.loss.currentIndex() != 3)
        self._show_stages()

    # ---- teacher preview ---------------------------------------------------------------------
    def preview(self) -> None:
        """Run the teacher on a few clips (``xmkd label --preview N --json``) and list its top
        classes per clip; a second click while it runs stops it."""
        if self.preview_job.is_running():
            self.preview_job.cancel()
            return
        problem = self.teacher.problem()
        if not problem and not self.data_args():
            problem = "data: choose the session folders or the packed NTU folder first"
        if problem:
            self.preview_status.setText(problem)
            return
        self.preview_rows.clear()
        self.preview_table.setRowCount(0)
        args = self.preview_args()
        self.log.appendPlainText(f"$ xmkd {shlex.join(args)}")
        self.preview_status.setText(
            f"running the teacher on {self.preview_clips.value()} clips (loading it first)…"
        )
        program, lead = self.program
        self.preview_job.start(program, [*lead, *args], env={"PYTHONUNBUFFERED": "1"})
        self.preview_button.setText("Stop preview")
        self.views.setCurrentIndex(1)

    @Slot(dict)
    def _preview_event(self, clip: dict[str, Any]) -> None:
        if "name" not in clip or "top" not in clip:
            return
        self.preview_rows.append(clip)
        row = self.preview_table.rowCount()
        self.preview_table.insertRow(row)
        top = []
        for entry in clip.get("top") or []:
            text = f"{entry.get('class')} {100 * float(entry.get('p') or 0):.0f}%"
            target = entry.get("target")
            if target and target != entry.get("class"):
                text += f" ({target})"
            top.append(text)
        label = clip.get("label")
        confidence = clip.get("confidence")
        shown_label = "no label" if label is None else str(label)
        if confidence is not None:
            shown_label += f" ({100 * float(confidence):.0f}%)"
        true = clip.get("true")
        cells = [str(clip["name"]), "" if true is None else str(true), "; ".join(top), shown_label]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            self.preview_table.setItem(row, column, item)

    @Slot(int, str)
    def _preview_finished(self, code: int, message: str) -> None:
        self.preview_button.setText("Preview")
        rows = self.preview_rows
        if message:
            self.preview_status.setText(f"preview: {message}")
            return
        labeled = [r for r in rows if r.get("label") is not None]
        known = [r for r in labeled if r.get("true") is not None]
        text = f"{len(rows)} clips: {len(labeled)} labeled"
        if len(labeled) < len(rows):
            text += f", {len(rows) - len(labeled)} without a label (below the minimum confidence)"
        if known:
            right = sum(r["label"] == r["true"] for r in known)
            text += f", {right} of {len(known)} as their true action"
        self.preview_status.setText(text)

    def shutdown(self) -> None:
        """Window closing: stop the children (distill checkpoints every epoch, label keeps
        its cache) without waiting long; the job's state stays in the output folder."""
        self.pipeline.shutdown()
        if self.preview_job.is_running():
            self.preview_job.cancel()
            process = self.preview_job.process
            process.waitForFinished(2000)
            if self.preview_job.is_running():
                process.kill()
                process.waitForFinished(1000)

    # ---- browse ------------------------------------------------------------------------------
    def _browse_data(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Session or packed NTU folder")
        if path:
            current = self.data_path.text().strip()
            sessions = self.data_kind.currentText() == "sessions"
            self.data_path.setText(f"{current};{path}" if current and sessions else path)

    def _browse_labels(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Teacher label cache")
        if path:
            self.labels.setText(path)

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder")
        if path:
            self.out_dir.setText(path)
