"""Distill tab: set up and run ``xmkd distill`` in a separate process, follow its JSON-lines
progress (progress bar with ETA, live curves of the losses, the agreement with the teacher and
the validation accuracy), cancel it cleanly, resume it, and export / build the engine with one
click when it ends.

Training runs as a child process (QProcess), never in the GUI process: a crash there ends only
that process, and its last error line is shown here.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
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
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.curves import Curves
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


class DistillTab(QWidget):
    #: path of the exported model (ONNX) after a successful export
    exported = Signal(str)
    #: path of the students checkpoint after a distillation ended successfully
    trained = Signal(str)

    def __init__(self, parent: QWidget | None = None, program: tuple[str, list[str]] | None = None):
        super().__init__(parent)
        #: (program, leading args) that run the ``xmkd`` CLI; tests may point it elsewhere
        self.program = program or xmkd_command()
        self.job = JsonLinesProcess(self)
        self.job.event.connect(self.on_event)
        self.job.output.connect(self._log_line)
        self.job.finished.connect(self._job_finished)
        self.job_kind = ""  # "distill" | "export" | "engine"
        self.events: list[dict[str, Any]] = []
        self.finished_ok = False
        self.epochs_total = 0
        self.steps_per_epoch = 0
        self.best_checkpoint: str | None = None
        self._stepped_epochs: set[int] = set()

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
        self.labels.setPlaceholderText("teacher label cache (from xmkd label)")
        self.labels_browse = QPushButton("…")
        form.addRow("teacher labels", _path_row(self.labels, self.labels_browse))
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
            "clips to train on: the paper's Student-Train split, or every clip (your own "
            "unlabeled recordings)"
        )
        form.addRow("split", self.split)
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("more xmkd distill flags, e.g. --lr 0.05 --window 64")
        form.addRow("more flags", self.extra)
        self.out_dir = QLineEdit(str(Path("runs") / "distill"))
        self.out_browse = QPushButton("…")
        form.addRow("output", _path_row(self.out_dir, self.out_browse))
        self.trt = QCheckBox("TensorRT engine too (needs a GPU)")
        form.addRow("export", self.trt)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.export_button = QPushButton("Export / build engine")
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        left = QVBoxLayout()
        left.addWidget(form_box)
        left.addLayout(buttons)
        left.addWidget(self.export_button)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        left.addWidget(QLabel("Output"))
        left.addWidget(self.log, 1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(420)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.eta = QLabel("ETA --")
        self.rate = QLabel("")
        prow = QHBoxLayout()
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.eta)
        prow.addWidget(self.rate)
        self.curves = Curves()
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right = QVBoxLayout()
        right.addLayout(prow)
        right.addWidget(self.curves, 1)
        right.addWidget(self.error)
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
        self.data_browse.clicked.connect(self._browse_data)
        self.labels_browse.clicked.connect(self._browse_labels)
        self.out_browse.clicked.connect(self._browse_out)
        self.loss.currentIndexChanged.connect(self._update_buttons)
        self.out_dir.textChanged.connect(self._update_buttons)
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
            "trt": self.trt,
        }

    # ---- command lines -----------------------------------------------------------------------
    def students(self) -> list[str]:
        k = self.k.value()
        choice = self.arch.currentText()
        if choice.startswith("stgcn +"):
            return [("stgcn", "hcn")[i % 2] for i in range(k)]
        return [choice] * k

    def last_checkpoint(self) -> Path:
        """Where ``xmkd distill`` keeps the checkpoint it resumes from (every epoch)."""
        return Path(self.out_dir.text()) / "last.pt"

    def export_checkpoint(self) -> Path:
        """The checkpoint to export: the run's best (its validation), else the last one."""
        if self.best_checkpoint and Path(self.best_checkpoint).is_file():
            return Path(self.best_checkpoint)
        best = Path(self.out_dir.text()) / "best.pt"
        return best if best.is_file() else self.last_checkpoint()

    def data_paths(self) -> tuple[list[str], str | None]:
        """(session folders, packed NTU folder or None) of the form."""
        paths = [p.strip() for p in self.data_path.text().split(";") if p.strip()]
        if self.data_kind.currentText() == "sessions":
            return paths, None
        return [], (paths[0] if paths else None)

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

    def distill_args(self, resume: bool = False) -> list[str]:
        """The ``xmkd distill`` arguments for the form (progress as JSON lines on stdout)."""
        args = ["distill"]
        sessions, packed = self.data_paths()
        if sessions:
            args += ["--sessions", *sessions]
        elif packed:
            args += ["--packed", packed]
        if self.labels.text().strip():
            args += ["--labels", self.labels.text().strip()]
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

    # ---- running -----------------------------------------------------------------------------
    def start(self, resume: bool = False) -> None:
        if self.job.is_running():
            return
        if not resume and self.last_checkpoint().is_file():
            # never overwrite a run (its checkpoints are hours of work)
            self.error.setText(
                f"{self.out_dir.text()} already holds a run (last.pt): Resume it, or choose "
                "another output folder for a new run"
            )
            return
        if not resume:
            self.curves.clear()
            self.events.clear()
            self.best_checkpoint = None
            self._stepped_epochs.clear()
        self.error.setText("")
        self.finished_ok = False
        try:
            args = self.distill_args(resume)
        except ValueError as exc:  # unbalanced quotes in "more flags"
            self.error.setText(f"more flags: {exc}")
            return
        except XmkdError as exc:  # a data folder that is not a session
            self.error.setText(f"data: {exc}")
            return
        self._run("distill", args)
        self.progress.setFormat("resuming…" if resume else "starting…")

    def _run(self, kind: str, args: list[str]) -> None:
        program, lead = self.program
        self.job_kind = kind
        self.log.appendPlainText(f"$ xmkd {' '.join(args)}")
        self.job.start(program, [*lead, *args], env={"PYTHONUNBUFFERED": "1"})
        self._update_buttons()

    def cancel(self) -> None:
        if self.job.is_running():
            self.progress.setFormat("cancelling…")
            self.job.cancel()

    def export(self) -> None:
        """Export the trained ensemble to ONNX (and a TensorRT engine when asked)."""
        if self.job.is_running():
            return
        fmt = "tensorrt" if self.trt.isChecked() else "onnx"
        checkpoint = self.export_checkpoint()
        self._export_target = checkpoint.with_suffix(".onnx")
        args = ["export", str(checkpoint), "--format", fmt]
        self.error.setText("")
        self._run("export", args)
        self.progress.setFormat(f"exporting ({fmt})…")
        self.progress.setRange(0, 0)  # busy indicator: export reports no steps

    @Slot(dict)
    def on_event(self, event: dict[str, Any]) -> None:
        """Apply one progress event of ``xmkd distill --progress-json -`` (schema in
        :mod:`xmkd.train.progress`: start, step, epoch, end)."""
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

    def _set_fraction(self, fraction: float, epochs_done: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.progress.setFormat(f"epoch {epochs_done}/{self.epochs_total}  %p%")

    @Slot(str)
    def _log_line(self, line: str) -> None:
        self.log.appendPlainText(line)

    @Slot(int, str)
    def _job_finished(self, code: int, message: str) -> None:
        kind = self.job_kind
        self.progress.setRange(0, 1000)
        if message:
            self.error.setText(f"xmkd {kind}: {message}")
            self.progress.setFormat(f"{kind} {'cancelled' if message == 'cancelled' else 'failed'}")
        else:
            if kind == "distill":
                self.finished_ok = True
                self.progress.setValue(1000)
                self.progress.setFormat("finished: ready to export")
                self.eta.setText("ETA 0:00")
                if self.export_checkpoint().is_file():
                    self.trained.emit(str(self.export_checkpoint()))
            else:
                self.progress.setValue(1000)
                self.progress.setFormat(f"{kind} done")
                target = getattr(self, "_export_target", None)
                if kind == "export" and target is not None and target.is_file():
                    self.progress.setFormat(f"exported {target.name}: ready for Live and Replay")
                    self.exported.emit(str(target))
        self.log.appendPlainText(f"[{kind} ended with exit code {code}]")
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.job.is_running()
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running and self.last_checkpoint().is_file())
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(not running and self.export_checkpoint().is_file())
        self.tau.setEnabled(self.loss.currentIndex() == 2)

    def shutdown(self) -> None:
        """Window closing: stop the child (it checkpoints every epoch) without waiting long."""
        if self.job.is_running():
            self.job.cancel()
            self.job.process.waitForFinished(3000)
            if self.job.is_running():
                self.job.process.kill()
                self.job.process.waitForFinished(1000)

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
