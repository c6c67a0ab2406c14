"""Teacher picker of the Distill tab: which video teacher labels the sessions, and how its scores
become the target actions; it produces the teacher part of an ``xmkd label`` command line.

One widget per concern: the teacher's kind (an xmkd TSN checkpoint, a torchvision video model,
an X-CLIP or CLIP open-vocabulary model), its model (checkpoint file, architecture, or model
folder / hub id), the weights file (torchvision), the class map (a TOML file or a shipped map's
short name) or typed action names (open vocabulary), the minimum confidence below which a clip
gets no label (or the background class), and further ``xmkd label`` flags. ``problem()`` says in
one sentence what is missing before a job starts.
"""

from __future__ import annotations

import shlex
from importlib import resources
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

#: Kind shown -> the kind's key (the SPEC prefix of ``xmkd label --teacher``; "xmkd" is a path).
KINDS = {
    "xmkd TSN checkpoint": "xmkd",
    "torchvision video model": "torchvision",
    "X-CLIP (open vocabulary)": "xclip",
    "CLIP (open vocabulary)": "clip",
}
OPEN_VOCABULARY = ("xclip", "clip")
#: What happens to clips below the minimum confidence -> the ``xmkd label`` flag it takes.
WEAK_CLIPS = {"no label (left out)": [], "background class": ["--background"]}


def torchvision_archs() -> tuple[str, ...]:
    """The torchvision video classifiers ``torchvision:ARCH`` accepts (imports torch: called
    when that kind is first chosen, not when the app starts)."""
    from xmkd.teachers.torchvision_video import ARCHS

    return ARCHS


def shipped_map_names() -> list[str]:
    """Short names of the class maps shipped with xmkd (``--classes NAME``). Read from the
    package folder as :func:`xmkd.classmap.shipped_class_maps` does, without importing that
    module: it imports torch, which the app loads only when a job needs it."""
    folder = resources.files("xmkd") / "data" / "classmaps"
    if not folder.is_dir():
        return []
    return sorted(Path(p.name).stem for p in folder.iterdir() if p.name.endswith(".toml"))


def _file_row(edit: QWidget, button: QPushButton) -> QWidget:
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button.setFixedWidth(28)
    row.addWidget(button)
    holder = QWidget()
    holder.setLayout(row)
    return holder


class TeacherPicker(QWidget):
    """The teacher of an ``xmkd label`` run (see the module docstring); ``changed`` is emitted
    on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.kind = QComboBox()
        self.kind.addItems(list(KINDS))
        self.kind.setToolTip(
            "xmkd TSN: a teacher trained with xmkd teacher train; torchvision: a video "
            "classifier with Kinetics-400 classes; X-CLIP / CLIP: a video-text or image-text "
            "model that scores the clips against the target actions' text prompts"
        )
        form.addRow("kind", self.kind)

        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("teacher checkpoint (xmkd teacher train)")
        self.checkpoint_browse = QPushButton("…")
        self.checkpoint_row = _file_row(self.checkpoint, self.checkpoint_browse)
        form.addRow("checkpoint", self.checkpoint_row)
        self.arch = QComboBox()
        self.arch.setEditable(True)
        self.arch.setToolTip("torchvision.models.video architecture (Kinetics-400 classes)")
        form.addRow("model", self.arch)
        self.hf_model = QLineEdit()
        self.hf_model.setPlaceholderText("model folder or Hugging Face hub id")
        self.hf_model.setToolTip(
            "a local folder (save_pretrained) or a hub id such as "
            "microsoft/xclip-base-patch32 / openai/clip-vit-base-patch32 (downloaded once "
            "into the Hugging Face cache on a machine with internet)"
        )
        self.hf_browse = QPushButton("…")
        self.hf_row = _file_row(self.hf_model, self.hf_browse)
        form.addRow("model", self.hf_row)
        self.weights = QLineEdit()
        self.weights.setPlaceholderText("state_dict file (empty: torchvision's cache)")
        self.weights_browse = QPushButton("…")
        self.weights_row = _file_row(self.weights, self.weights_browse)
        form.addRow("weights", self.weights_row)

        self.class_map = QComboBox()
        self.class_map.setEditable(True)
        self.class_map.addItem("")
        self.class_map.addItems(shipped_map_names())
        self.class_map.setToolTip(
            "class map (TOML): the target actions, in order, with the teacher classes and/or "
            "text prompts that mean each; a file, or a shipped map's short name"
        )
        self.class_map_browse = QPushButton("…")
        self.class_map_row = _file_row(self.class_map, self.class_map_browse)
        form.addRow("class map", self.class_map_row)
        self.actions = QLineEdit()
        self.actions.setPlaceholderText("or type the actions: drink water, sit down, wave")
        self.actions.setToolTip(
            "the target actions, separated by commas: their names are the prompts "
            '("a video of a person NAME"); a class map gives better prompts'
        )
        form.addRow("actions", self.actions)
        self.min_confidence = QDoubleSpinBox()
        self.min_confidence.setRange(0.0, 1.0)
        self.min_confidence.setSingleStep(0.05)
        self.min_confidence.setDecimals(2)
        self.min_confidence.setSpecialValueText("off")
        self.min_confidence.setToolTip(
            "a clip whose best target action has a lower probability gets no label (left out "
            "of distillation) or the background class"
        )
        form.addRow("min confidence", self.min_confidence)
        self.weak = QComboBox()
        self.weak.addItems(list(WEAK_CLIPS))
        self.weak.setToolTip("what clips below the minimum confidence become")
        form.addRow("weak clips", self.weak)
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("more xmkd label flags, e.g. --clips-per-video 3")
        self.extra.setToolTip(
            "e.g. --batch-size 8, --clips-per-video 3, --dtype bfloat16, --temperature 0.01"
        )
        form.addRow("label flags", self.extra)
        self._form = form

        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.checkpoint_browse.clicked.connect(self._browse_checkpoint)
        self.hf_browse.clicked.connect(self._browse_model_folder)
        self.weights_browse.clicked.connect(self._browse_weights)
        self.class_map_browse.clicked.connect(self._browse_class_map)
        self.min_confidence.valueChanged.connect(self._update_rows)
        for signal in (
            self.checkpoint.textChanged,
            self.arch.currentTextChanged,
            self.hf_model.textChanged,
            self.weights.textChanged,
            self.class_map.currentTextChanged,
            self.actions.textChanged,
            self.min_confidence.valueChanged,
            self.weak.currentIndexChanged,
            self.extra.textChanged,
        ):
            signal.connect(self.changed)
        self._kind_changed()

    def persistent_widgets(self) -> dict[str, QWidget]:
        return {
            "teacher_kind": self.kind,
            "teacher_checkpoint": self.checkpoint,
            "teacher_arch": self.arch,
            "teacher_model": self.hf_model,
            "teacher_weights": self.weights,
            "teacher_class_map": self.class_map,
            "teacher_actions": self.actions,
            "teacher_min_confidence": self.min_confidence,
            "teacher_weak": self.weak,
            "teacher_extra": self.extra,
        }

    def kind_key(self) -> str:
        return KINDS[self.kind.currentText()]

    def _kind_changed(self) -> None:
        self._update_rows()
        self.changed.emit()

    def _update_rows(self) -> None:
        key = self.kind_key()
        if key == "torchvision" and self.arch.count() == 0:
            typed = self.arch.currentText()  # restored from the settings before the list
            self.arch.addItems(list(torchvision_archs()))
            if typed:
                self.arch.setCurrentText(typed)
        self._form.setRowVisible(self.checkpoint_row, key == "xmkd")
        self._form.setRowVisible(self.arch, key == "torchvision")
        self._form.setRowVisible(self.hf_row, key in OPEN_VOCABULARY)
        self._form.setRowVisible(self.weights_row, key == "torchvision")
        self._form.setRowVisible(self.actions, key in OPEN_VOCABULARY)
        self.weak.setEnabled(self.min_confidence.value() > 0)
        self.class_map.lineEdit().setPlaceholderText(
            "none: the actions typed below"
            if key in OPEN_VOCABULARY
            else "none: the teacher's own classes"
        )

    # ---- the command line --------------------------------------------------------------------
    def model_text(self) -> str:
        key = self.kind_key()
        if key == "xmkd":
            return self.checkpoint.text().strip()
        if key == "torchvision":
            return self.arch.currentText().strip()
        return self.hf_model.text().strip()

    def spec(self) -> str:
        """The ``--teacher SPEC``: a checkpoint path, ``torchvision:ARCH``, ``xclip:MODEL`` or
        ``clip:MODEL``."""
        key = self.kind_key()
        model = self.model_text()
        return model if key == "xmkd" else f"{key}:{model}"

    def action_names(self) -> list[str]:
        return [a.strip() for a in self.actions.text().split(",") if a.strip()]

    def args(self) -> list[str]:
        """The teacher part of the ``xmkd label`` arguments. Raises ValueError for unbalanced
        quotes in the extra flags."""
        key = self.kind_key()
        args = ["--teacher", self.spec()]
        if key == "torchvision" and self.weights.text().strip():
            args += ["--weights", self.weights.text().strip()]
        class_map = self.class_map.currentText().strip()
        if class_map:
            args += ["--classes", class_map]
        elif key in OPEN_VOCABULARY and self.action_names():
            args += ["--actions", ", ".join(self.action_names())]
        if self.min_confidence.value() > 0:
            args += ["--min-confidence", f"{self.min_confidence.value():g}"]
            args += WEAK_CLIPS[self.weak.currentText()]
        return args + shlex.split(self.extra.text())

    def problem(self) -> str:
        """Why this teacher cannot label yet, in one sentence ("" when it can)."""
        key = self.kind_key()
        model = self.model_text()
        if key == "xmkd":
            if not model:
                return "teacher: choose the teacher checkpoint (xmkd teacher train)"
            if not Path(model).is_file():
                return f"teacher: the checkpoint {model} does not exist"
        elif not model:
            return f"teacher: name the {self.kind.currentText()} model"
        weights = self.weights.text().strip()
        if key == "torchvision" and weights and not Path(weights).is_file():
            return f"teacher: the weights file {weights} does not exist"
        class_map = self.class_map.currentText().strip()
        if class_map and class_map not in shipped_map_names() and not Path(class_map).is_file():
            return f"teacher: the class map {class_map} is neither a file nor a shipped map"
        if key in OPEN_VOCABULARY and not class_map and not self.action_names():
            return (
                "teacher: an open-vocabulary teacher needs the target actions: type their "
                "names or choose a class map with prompts"
            )
        try:
            shlex.split(self.extra.text())
        except ValueError as exc:
            return f"label flags: {exc}"
        return ""

    # ---- browse ------------------------------------------------------------------------------
    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Teacher checkpoint", "", "Checkpoints (*.pt);;All (*)"
        )
        if path:
            self.checkpoint.setText(path)

    def _browse_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder (save_pretrained)")
        if path:
            self.hf_model.setText(path)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Weights (state_dict)", "", "Weights (*.pt *.pth *.bin);;All (*)"
        )
        if path:
            self.weights.setText(path)

    def _browse_class_map(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Class map", "", "TOML (*.toml);;All (*)")
        if path:
            self.class_map.setEditText(path)
