"""Replay tab: open NTU ``.skeleton`` files or a folder (with the paired ``_rgb.avi`` when
present), play / pause / seek / change speed, see the skeleton beside the video, the ground truth
from the file name beside the loaded model's prediction, and evaluate a whole folder (accuracy
and a confusion-matrix plot).

The folder evaluation scores the clips of one protocol split (chosen from the file names by
``xmkd.ntu.splits.protocol_split`` on x-sub 60, as ``xmkd eval`` chooses them) or every labelled
file, and says which it scored: scoring the clips the students trained on overstates accuracy
(a demo session: 82.6% over every file against 68.8% on its Test split). A recording session
with Test clips defaults to the Test split, so the tab agrees with ``xmkd eval``.

Reading files, decoding video and running the model happen in worker threads; playback only
indexes arrays already in memory.

Replay plays NTU files only, not the capture sources: seeking, the ground truth and folder
evaluation need the whole skeleton sequence and its action label up front, and a video file or
a Kinect MKV has neither until an estimator has run over every frame. That run is a recording:
the Record tab (or ``xmkd record --source video:FILE`` / ``mkv:FILE``) turns such a file into an
NTU-named session, which opens here; the Live tab plays the file through the students as it is
estimated. Given such a file, the tab says so (`NOT_REPLAYED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.confusion import ConfusionView
from gui.prob_bars import ProbBars
from gui.skeleton_view import SkeletonView
from gui.video_view import VideoView
from gui.workers import preview_image, run_task

SPEEDS = ("0.25x", "0.5x", "1x", "2x", "4x")
NTU_FPS = 30.0
VIDEO_PREVIEW_WIDTH = 640
#: The clips "Evaluate folder" can score: a protocol split, or every labelled file ("all").
EVAL_SCOPES = {
    "test": "Test split (the clips xmkd eval scores)",
    "teacher_train": "Teacher-Train split",
    "student_train": "Student-Train split",
    "all": "every labelled file",
}
#: The benchmark whose subject split names the protocol parts (``xmkd eval``'s default).
EVAL_BENCHMARK = "xsub60"
#: Split names as the tab says them.
SPLIT_NAMES = {"teacher_train": "Teacher-Train", "student_train": "Student-Train", "test": "Test"}


#: Files the tab does not replay (capture sources without skeletons yet) -> what it says.
NOT_REPLAYED_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".webm")
NOT_REPLAYED = (
    "{name} is a video without skeletons: record it into a session in the Record tab (source "
    "Video file or Kinect MKV; or xmkd record --source video:FILE) and open the session here, "
    "or play it through the students in the Live tab"
)


def skeleton_files(paths: list[str | Path]) -> list[Path]:
    """The ``.skeleton`` files among ``paths`` and inside the folders among them, sorted."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.skeleton")))
        elif p.suffix == ".skeleton":
            files.append(p)
    return files


@dataclass
class ReplayClip:
    path: Path
    joints: list[list[np.ndarray]]  # per frame, per body (25, 3)
    pixels: list[list[np.ndarray]]  # per frame, per body (25, 2) colour pixels
    sequence: Any  # xmkd.ntu.SkeletonSequence
    video: list[np.ndarray] | None = None  # RGB preview frames
    video_scale: float = 1.0
    video_size: tuple[int, int] | None = None
    truth: str = ""
    truth_label: int | None = None
    fps: float = NTU_FPS
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.joints)


def load_clip(path: Path, cancelled=lambda: False) -> ReplayClip:
    """Read a ``.skeleton`` file and its paired video (decoded to preview size)."""
    from capture.source import sequence_to_bodies
    from xmkd.ntu import read_skeleton

    seq = read_skeleton(path)
    bodies = sequence_to_bodies(seq)
    clip = ReplayClip(
        path=path,
        joints=[[b.joints for b in frame] for frame in bodies],
        pixels=[[b.color_px for b in frame] for frame in bodies],
        sequence=seq,
    )
    clip.truth, clip.truth_label = ground_truth(path)
    from capture.ntu_replay import find_video

    video = find_video(path)
    if video is not None:
        import cv2

        from xmkd.recordings import probe_video

        info = probe_video(video)
        clip.video_size = (info.width, info.height)
        if info.fps > 0:
            clip.fps = info.fps
        # Decode frame by frame, keeping preview-size RGB only (full NTU frames are 6 MB each).
        cap = cv2.VideoCapture(str(video))
        frames = []
        try:
            while not cancelled():
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb, clip.video_scale = preview_image(bgr, VIDEO_PREVIEW_WIDTH)
                frames.append(rgb)
        finally:
            cap.release()
        clip.video = frames or None
        if frames and len(frames) != clip.num_frames:
            clip.notes.append(f"video has {len(frames)} frames, skeleton {clip.num_frames}")
    return clip


def split_of(path: Path, benchmark: str = EVAL_BENCHMARK) -> str | None:
    """The protocol part ("teacher_train", "student_train", "test") of an NTU-named file, by the
    rule ``xmkd eval`` uses; None outside the benchmark or for a name that is not NTU's."""
    from xmkd.ntu import SampleName, SampleNameError
    from xmkd.ntu.splits import protocol_split

    try:
        return protocol_split(SampleName.from_path(path), benchmark)
    except SampleNameError:
        return None


def files_to_score(paths: list[Path], scope: str) -> list[Path]:
    """The labelled files among ``paths`` (an action in their name) that ``scope`` keeps: those
    of one protocol split (see :data:`EVAL_SCOPES`), or all of them for ``"all"``."""
    labelled = [p for p in paths if ground_truth(p)[1] is not None]
    if scope == "all":
        return labelled
    return [p for p in labelled if split_of(p) == scope]


def describe_scope(scored: list[Path], labelled: int, scope: str) -> str:
    """Which clips an evaluation scored, in words (shown beside its accuracy)."""
    counts = {part: 0 for part in SPLIT_NAMES}
    for path in scored:
        part = split_of(path)
        if part is not None:
            counts[part] += 1
    if scope != "all":
        left = labelled - len(scored)
        return f"{SPLIT_NAMES[scope]} split: {len(scored)} of {labelled} labelled files" + (
            f" ({left} of other splits not scored)" if left else ""
        )
    training = counts["teacher_train"] + counts["student_train"]
    parts = ", ".join(f"{n} {SPLIT_NAMES[k]}" for k, n in counts.items() if n)
    text = f"every labelled file: {len(scored)}" + (f" ({parts})" if parts else "")
    if training:
        text += "; training clips raise the accuracy above xmkd eval's"
    return text


def is_session_with_test_clips(folder: Path | None, paths: list[Path]) -> bool:
    """A recording session (session.json) listing Test-split clips: evaluated like xmkd eval."""
    from xmkd.recordings import SESSION_FILE

    if folder is None or not (folder / SESSION_FILE).is_file():
        return False
    return any(split_of(p) == "test" for p in paths if ground_truth(p)[1] is not None)


def ground_truth(path: Path) -> tuple[str, int | None]:
    """(text, 0-based label) of the action in an NTU file name, ("", None) if it has none."""
    from xmkd.ntu import SampleName, SampleNameError

    try:
        name = SampleName.from_path(path)
    except SampleNameError:
        return "", None
    if name.label < 0:
        return "", None  # A000: an unlabeled recording
    return f"A{name.action:03d}", name.label


class ReplayTab(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.clip: ReplayClip | None = None
        self.predictor: Any = None
        self.index = 0
        self.eval_result: dict[str, Any] | None = None
        self._eval_job = None
        self._load_serial = 0

        # ---- file list and model -------------------------------------------------------
        self.open_files = QPushButton("Open files…")
        self.open_folder = QPushButton("Open folder…")
        for button in (self.open_files, self.open_folder):
            button.setToolTip(
                "NTU .skeleton files (with their _rgb.avi), e.g. a recorded session; a video "
                "file or Kinect MKV is recorded into a session first (Record tab)"
            )
        self.files = QListWidget()
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("students checkpoint (.pt) or exported .onnx")
        self.model_browse = QPushButton("…")
        self.model_browse.setFixedWidth(28)
        self.backend = QComboBox()
        self.backend.addItems(["auto", "torch", "onnxruntime", "tensorrt"])
        self.load_model_button = QPushButton("Load model")
        self.model_status = QLabel("no model")
        self.model_status.setWordWrap(True)
        self.eval_button = QPushButton("Evaluate folder")
        self.eval_scope = QComboBox()
        for key, text in EVAL_SCOPES.items():
            self.eval_scope.addItem(text, key)
        self.eval_scope.setCurrentIndex(self.eval_scope.findData("all"))
        self.eval_scope.setToolTip(
            "which clips 'Evaluate folder' scores: a protocol split (x-sub 60 subjects, from the "
            "file names, as xmkd eval picks them) or every labelled file"
        )
        self.eval_progress = QProgressBar()
        self.eval_progress.setFormat("%v / %m")
        self.accuracy = QLabel("")
        self.accuracy.setWordWrap(True)
        left = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(self.open_files)
        row.addWidget(self.open_folder)
        left.addLayout(row)
        left.addWidget(self.files, 1)
        model_box = QGroupBox("Model")
        mb = QVBoxLayout(model_box)
        mrow = QHBoxLayout()
        mrow.addWidget(self.model_path, 1)
        mrow.addWidget(self.model_browse)
        mb.addLayout(mrow)
        mrow2 = QHBoxLayout()
        mrow2.addWidget(self.backend)
        mrow2.addWidget(self.load_model_button)
        mb.addLayout(mrow2)
        mb.addWidget(self.model_status)
        scope_row = QHBoxLayout()
        scope_row.addWidget(QLabel("score"))
        scope_row.addWidget(self.eval_scope, 1)
        mb.addLayout(scope_row)
        mb.addWidget(self.eval_button)
        mb.addWidget(self.eval_progress)
        mb.addWidget(self.accuracy)
        left.addWidget(model_box)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(340)

        # ---- player ----------------------------------------------------------------------
        self.video = VideoView()
        self.skeleton = SkeletonView()
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.video)
        views.addWidget(self.skeleton)
        views.setSizes([500, 500])
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.frame_label = QLabel("0 / 0")
        self.speed = QComboBox()
        self.speed.addItems(SPEEDS)
        self.speed.setCurrentText("1x")
        transport = QHBoxLayout()
        transport.addWidget(self.play_button)
        transport.addWidget(self.slider, 1)
        transport.addWidget(self.frame_label)
        transport.addWidget(QLabel("speed"))
        transport.addWidget(self.speed)
        self.truth_label = QLabel("ground truth: –")
        self.prediction_label = QLabel("prediction: –")
        for label in (self.truth_label, self.prediction_label):
            label.setStyleSheet("font-size: 13pt;")
        info = QHBoxLayout()
        info.addWidget(self.truth_label, 1)
        info.addWidget(self.prediction_label, 1)
        self.bars = ProbBars(5)
        self.confusion = ConfusionView()
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.bars)
        bottom.addWidget(self.confusion)
        player = QVBoxLayout()
        player.addWidget(views, 3)
        player.addLayout(transport)
        player.addLayout(info)
        player.addWidget(bottom, 2)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00;")
        player.addWidget(self.message)
        player_widget = QWidget()
        player_widget.setLayout(player)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left_widget)
        self.splitter.addWidget(player_widget)
        self.splitter.setStretchFactor(1, 1)
        outer = QVBoxLayout(self)
        outer.addWidget(self.splitter)

        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.open_files.clicked.connect(self._open_files)
        self.open_folder.clicked.connect(self._open_folder)
        self.files.currentRowChanged.connect(self._file_selected)
        self.play_button.toggled.connect(self.set_playing)
        self.slider.valueChanged.connect(self.seek)
        self.speed.currentTextChanged.connect(self._speed_changed)
        self.model_browse.clicked.connect(self._browse_model)
        self.load_model_button.clicked.connect(self.load_model)
        self.eval_button.clicked.connect(self.evaluate_folder)
        self.folder: Path | None = None
        self._paths: list[Path] = []

    # ---- settings --------------------------------------------------------------------------
    def persistent_widgets(self) -> dict[str, QWidget]:
        return {"model_path": self.model_path, "backend": self.backend, "speed": self.speed}

    # ---- files -------------------------------------------------------------------------------
    def _open_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "NTU skeleton files", "", "*.skeleton")
        if paths:
            self.set_paths(paths)

    def _open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of .skeleton files")
        if path:
            self.set_paths([path])

    def set_paths(self, paths: list[str | Path]) -> None:
        """List the .skeleton files in ``paths`` (files and/or folders) and open the first."""
        self._paths = skeleton_files(paths)
        folders = [Path(p) for p in paths if Path(p).is_dir()]
        self.folder = folders[0] if folders else (self._paths[0].parent if self._paths else None)
        self.files.clear()
        self.files.addItems([p.name for p in self._paths])
        # a session's students trained on its other splits: score what xmkd eval scores
        scope = "test" if is_session_with_test_clips(self.folder, self._paths) else "all"
        self.eval_scope.setCurrentIndex(self.eval_scope.findData(scope))
        videos = [Path(p) for p in paths if Path(p).suffix.lower() in NOT_REPLAYED_SUFFIXES]
        if not self._paths and videos:
            self.show_message(NOT_REPLAYED.format(name=videos[0].name))
        elif not self._paths:
            self.show_message("no .skeleton files there")
        else:
            self.files.setCurrentRow(0)

    @Slot(int)
    def _file_selected(self, row: int) -> None:
        if 0 <= row < len(self._paths):
            self.open_clip(self._paths[row])

    def open_clip(self, path: Path) -> None:
        """Load a clip in a worker thread; the newest request wins."""
        self.set_playing(False)
        self._load_serial += 1
        serial = self._load_serial
        self.show_message("")
        self.frame_label.setText("loading…")
        run_task(
            lambda report, cancelled: load_clip(Path(path), cancelled),
            self,
            result=lambda clip: self._clip_loaded(clip, serial),
            error=self.show_message,
        )

    def _clip_loaded(self, clip: ReplayClip, serial: int) -> None:
        if serial != self._load_serial:
            return  # the user already picked another file
        self.clip = clip
        self.index = 0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, clip.num_frames - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.truth_label.setText(f"ground truth: {clip.truth or '–'}")
        self.prediction_label.setText("prediction: –")
        self.bars.clear()
        if clip.video is None:
            self.video.clear("no paired _rgb.avi")
        if clip.notes:
            self.show_message("; ".join(clip.notes))
        self.show_frame(0)
        if self.predictor is not None:
            self.predict_clip()

    # ---- playback ----------------------------------------------------------------------------
    def show_frame(self, index: int) -> None:
        clip = self.clip
        if clip is None or clip.num_frames == 0:
            return
        index = max(0, min(index, clip.num_frames - 1))
        self.index = index
        if clip.video is not None:
            v = clip.video[min(index, len(clip.video) - 1)]
            self.video.set_frame(v, clip.video_scale, clip.pixels[index], clip.video_size)
        else:
            self.video.set_frame(None, 1.0, clip.pixels[index])
        self.skeleton.set_bodies(clip.joints[index])
        self.frame_label.setText(f"{index + 1} / {clip.num_frames}")

    def seek(self, index: int) -> None:
        self.show_frame(index)

    def set_playing(self, on: bool) -> None:
        if on and self.clip is not None:
            if self.index >= self.clip.num_frames - 1:
                self.slider.setValue(0)
            self._speed_changed()
            self.timer.start()
        else:
            self.timer.stop()
        if self.play_button.isChecked() != (on and self.clip is not None):
            self.play_button.blockSignals(True)
            self.play_button.setChecked(on and self.clip is not None)
            self.play_button.blockSignals(False)
        self.play_button.setText("Pause" if self.timer.isActive() else "Play")

    def speed_factor(self) -> float:
        return float(self.speed.currentText().rstrip("x"))

    def _speed_changed(self, *_: object) -> None:
        fps = self.clip.fps if self.clip is not None else NTU_FPS
        self.timer.setInterval(max(1, int(round(1000.0 / (fps * self.speed_factor())))))

    def _tick(self) -> None:
        if self.clip is None:
            return
        if self.index >= self.clip.num_frames - 1:
            self.set_playing(False)
            return
        self.slider.setValue(self.index + 1)  # -> seek -> show_frame

    # ---- model -------------------------------------------------------------------------------
    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model", "", "Checkpoints and exports (*.pt *.onnx *.engine)"
        )
        if path:
            self.model_path.setText(path)

    def load_model(self) -> None:
        from gui.predict import ClipPredictor

        path = self.model_path.text().strip()
        if not path:
            self.show_message("choose a checkpoint or an exported model first")
            return
        backend = self.backend.currentText()
        self.model_status.setText("loading…")
        run_task(
            lambda report, cancelled: ClipPredictor(path, backend),
            self,
            result=self._model_loaded,
            error=self._model_failed,
        )

    def _model_loaded(self, predictor: Any) -> None:
        self.predictor = predictor
        self.model_status.setText(predictor.description)
        if self.clip is not None:
            self.predict_clip()

    def _model_failed(self, message: str) -> None:
        self.model_status.setText("no model")
        self.show_message(message)

    def predict_clip(self) -> None:
        clip, predictor = self.clip, self.predictor
        if clip is None or predictor is None:
            return
        self.prediction_label.setText("prediction: …")
        serial = self._load_serial
        run_task(
            lambda report, cancelled: predictor.predict(clip.sequence),
            self,
            result=lambda probs: self._show_prediction(probs, serial),
            error=self.show_message,
        )

    def _show_prediction(self, probs: np.ndarray, serial: int) -> None:
        if serial != self._load_serial or self.predictor is None:
            return
        names = self.predictor.class_names
        clip = self.clip
        if clip is not None and clip.truth_label is not None and clip.truth_label < len(names):
            self.truth_label.setText(f"ground truth: {clip.truth} {names[clip.truth_label]}")
        best = int(np.argmax(probs))
        ok = ""
        if self.clip is not None and self.clip.truth_label is not None:
            ok = "  ✔" if best == self.clip.truth_label else "  ✘"
        self.prediction_label.setText(f"prediction: {names[best]} ({100 * probs[best]:.0f}%){ok}")
        top = np.argsort(-probs)[:5]
        self.bars.set_probabilities([(names[i], float(probs[i])) for i in top])

    # ---- batch evaluation --------------------------------------------------------------------
    def evaluate_folder(self) -> None:
        """Classify the listed files the scope keeps (see :data:`EVAL_SCOPES`); accuracy and
        confusion, with which clips were scored."""
        predictor = self.predictor
        if predictor is None:
            self.show_message("load a model first")
            return
        labelled = files_to_score(self._paths, "all")
        if not labelled:
            self.show_message("no files with an action in their name (SsssCcccPpppRrrrAaaa)")
            return
        scope = self.eval_scope.currentData()
        paths = files_to_score(labelled, scope)
        if not paths:
            self.show_message(
                f"none of the {len(labelled)} labelled files is in the {SPLIT_NAMES[scope]} "
                "split; choose other clips to score"
            )
            return
        described = describe_scope(paths, len(labelled), scope)
        self.eval_button.setEnabled(False)
        self.eval_progress.setRange(0, len(paths))
        self.eval_progress.setValue(0)
        self._eval_job = run_task(
            lambda report, cancelled: evaluate_files(predictor, paths, report, cancelled),
            self,
            progress=lambda done, total, text: self.eval_progress.setValue(done),
            result=lambda result: self._show_evaluation(
                {**result, "scope": described, "scored": [p.name for p in paths]}
            ),
            error=self.show_message,
            finished=lambda: self.eval_button.setEnabled(True),
        )

    def _show_evaluation(self, result: dict[str, Any]) -> None:
        self.eval_result = result
        n, correct = result["count"], result["correct"]
        self.accuracy.setText(
            f"accuracy {100 * result['accuracy']:.1f}% ({correct}/{n})"
            + (f", {len(result['failed'])} unreadable" if result["failed"] else "")
            + (f" · {result['scope']}" if result.get("scope") else "")
        )
        scored = result.get("scored", [])
        shown = 40  # a tooltip, not a report: the first files and how many more
        self.accuracy.setToolTip(
            "\n".join(scored[:shown])
            + (f"\n… and {len(scored) - shown} more" if len(scored) > shown else "")
        )
        # The model's class names on the axes; the tooltip adds each one's NTU action code.
        codes = [f"A{c + 1:03d}" for c in result["classes"]]
        self.confusion.set_matrix(result["confusion"], result["labels"])
        self.confusion.setToolTip(
            "\n".join(f"{code}: {name}" for code, name in zip(codes, result["labels"]))
        )
        if result["failed"]:
            self.show_message("; ".join(result["failed"][:3]))

    # ---- misc --------------------------------------------------------------------------------
    @Slot(str)
    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def shutdown(self) -> None:
        self.timer.stop()
        if self._eval_job is not None:
            self._eval_job.cancel()


def evaluate_files(predictor: Any, paths: list[Path], report, cancelled) -> dict[str, Any]:
    """Classify each file; confusion over the classes that occur (truth or prediction)."""
    from xmkd.errors import XmkdError
    from xmkd.ntu import read_skeleton

    truths: list[int] = []
    preds: list[int] = []
    failed: list[str] = []
    for i, path in enumerate(paths):
        if cancelled():
            break
        try:
            probs = predictor.predict(read_skeleton(path))
        except XmkdError as exc:  # a bad file is reported, the rest is still evaluated
            failed.append(str(exc))
        else:
            truths.append(int(ground_truth(path)[1]))
            preds.append(int(np.argmax(probs)))
        report(i + 1, len(paths), path.name)
    classes = sorted(set(truths) | set(preds))
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truths, preds):
        confusion[index[t], index[p]] += 1
    correct = int(sum(t == p for t, p in zip(truths, preds)))
    names = predictor.class_names
    return {
        "count": len(truths),
        "correct": correct,
        "accuracy": correct / len(truths) if truths else 0.0,
        "confusion": confusion,
        "labels": [names[c] if c < len(names) else f"A{c + 1:03d}" for c in classes],
        "classes": classes,
        "failed": failed,
    }
