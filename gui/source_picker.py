"""Source picker shared by the Record and Live tabs: synthetic, NTU replay, Kinect MKV file, the
Azure Kinect or Orbbec devices found, a video file or a webcam, with the skeleton estimator each
can use; it produces a ``capture.source`` spec string.

Estimators per kind: MKV files and Azure Kinects use the Body Tracking SDK or, with
``skeleton=lifted``, RTMPose 2D keypoints lifted with depth (a ``pose_model`` file); Orbbec
devices have only the lifted estimator (or none: colour and depth only); video files and
webcams use a camera-only estimator (``estimator=``, `capture.camera.ESTIMATORS`).
`SourcePicker.problem` builds the sources without opening them, so an estimator, model file or
SDK that is missing is its one sentence before anything starts."""

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
    QSpinBox,
    QWidget,
)

from gui.workers import run_task
from xmkd.synth import PRESETS as SYNTH_PRESETS

KINDS = {
    "synthetic": "synthetic",
    "NTU replay (.skeleton file or folder)": "ntu",
    "Kinect MKV file": "mkv",
    "Azure Kinect device": "kinect",
    "Video file (camera-only poses)": "video",
    "Webcam (camera-only poses)": "webcam",
    "Orbbec device (Femto, Gemini)": "orbbec",
}
#: Skeleton estimators per kind: label -> the ``skeleton`` option (None: the kind's default).
SKELETONS: dict[str, dict[str, str | None]] = {
    "mkv": {"Body Tracking SDK": None, "2D pose lifted with depth": "lifted"},
    "kinect": {"Body Tracking SDK": None, "2D pose lifted with depth": "lifted"},
    "orbbec": {"2D pose lifted with depth": None, "none (colour + depth only)": "none"},
}
#: Kinds whose argument is a path, and what the file dialog offers.
PATH_KINDS = ("ntu", "mkv", "video")
DEVICE_KINDS = ("kinect", "orbbec")
#: Kinds whose skeletons come from a camera-only estimator (``estimator=``, ``people=``).
CAMERA_ONLY_KINDS = ("video", "webcam")


def enumerate_kinect_devices() -> list[str]:
    """Names of the Azure Kinect devices attached ("0: serial ..."); [] when none.

    Raises the capture part's one-sentence error when the Kinect extra or SDK is missing.
    """
    from capture.kinect import list_devices

    return [f"{d['index']}: {d['serial']}" for d in list_devices()]


def enumerate_orbbec_devices() -> list[str]:
    """Names of the Orbbec devices attached ("0: serial (name)"); [] when none; the capture
    part's one sentence when pyorbbecsdk2 is missing."""
    from capture.orbbec import list_devices

    return [f"{d['index']}: {d['serial']} ({d['name']})" for d in list_devices()]


def camera_estimators() -> list[str]:
    """The camera-only estimators ``video:``/``webcam:`` can use (``?estimator=NAME``)."""
    from capture.camera import ESTIMATORS

    return sorted(ESTIMATORS)


def compose_spec(kind: str, arg: str = "", options: dict[str, object] | None = None) -> str:
    """``kind[:arg][?k=v&...]`` as ``capture.source.parse_spec`` reads it."""
    spec = f"{kind}:{arg}" if arg else kind
    if options:
        spec += "?" + "&".join(f"{k}={v}" for k, v in options.items())
    return spec


class SourcePicker(QWidget):
    """Kind combo, a path (with Browse) for file sources, a device list for Kinect and Orbbec,
    a camera number for webcams, and the skeleton estimator the kind can use."""

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
        self.webcam = QSpinBox()
        self.webcam.setRange(0, 63)
        self.webcam.setToolTip("the camera's number as OpenCV counts them (0: the first)")
        form.addRow("camera", self.webcam)
        self.skeleton = QComboBox()
        self.skeleton.setToolTip(
            "where skeletons come from: the Azure Kinect Body Tracking SDK, or RTMPose 2D "
            "keypoints lifted to metres with the depth (needs an RTMPose ONNX model)"
        )
        form.addRow("skeleton", self.skeleton)
        mrow = QHBoxLayout()
        mrow.setContentsMargins(0, 0, 0, 0)
        self.pose_model = QLineEdit()
        self.pose_model.setPlaceholderText("RTMPose .onnx (or XMKD_POSE_MODEL)")
        self.pose_browse = QPushButton("Browse…")
        mrow.addWidget(self.pose_model)
        mrow.addWidget(self.pose_browse)
        self.pose_row = QWidget()
        self.pose_row.setLayout(mrow)
        form.addRow("pose model", self.pose_row)
        self.estimator = QComboBox()
        self.estimator.setToolTip("the camera-only 3D pose estimator for plain RGB")
        form.addRow("estimator", self.estimator)
        self.people = QSpinBox()
        self.people.setRange(1, 6)
        self.people.setValue(2)  # the sources' default
        self.people.setToolTip(
            "people to find per frame: 2 covers NTU's two-person actions (people are found "
            "first by OpenCV's HOG detector, which opencv-contrib-python has); 1 is the "
            "cheapest and needs no detector"
        )
        form.addRow("people", self.people)
        self._form = form
        self._settings: dict[QWidget, tuple[tuple[str, ...], str]] = {}
        self._devices_of: str | None = None  # the kind the device list was found for
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.path.textChanged.connect(self.changed)
        self.browse.clicked.connect(self._browse)
        self.refresh.clicked.connect(self.find_devices)
        self.skeleton.currentIndexChanged.connect(self._skeleton_changed)
        self.pose_browse.clicked.connect(self._browse_pose_model)
        self._kind_changed()

    def kind_key(self) -> str:
        return KINDS[self.kind.currentText()]

    def _kind_changed(self) -> None:
        key = self.kind_key()
        self._form.setRowVisible(self.path_row, key in PATH_KINDS)
        self._form.setRowVisible(self.device_row, key in DEVICE_KINDS)
        self._form.setRowVisible(self.preset, key == "synthetic")
        self._form.setRowVisible(self.webcam, key == "webcam")
        self.skeleton.blockSignals(True)
        self.skeleton.clear()
        self.skeleton.addItems(list(SKELETONS.get(key, {})))
        self.skeleton.blockSignals(False)
        self._form.setRowVisible(self.skeleton, key in SKELETONS)
        if key in CAMERA_ONLY_KINDS and self.estimator.count() == 0:
            self.estimator.addItems(camera_estimators())
        self._form.setRowVisible(self.estimator, key in CAMERA_ONLY_KINDS)
        self._form.setRowVisible(self.people, key in CAMERA_ONLY_KINDS)
        if key in DEVICE_KINDS and (self.device.count() == 0 or self._devices_of != key):
            self.find_devices()
        self._skeleton_changed()
        self._enable_settings()
        self.changed.emit()

    def skeleton_option(self) -> str | None:
        """The ``skeleton`` option the chosen estimator needs (None: the kind's default)."""
        return SKELETONS.get(self.kind_key(), {}).get(self.skeleton.currentText())

    def _lifted(self) -> bool:
        """Whether the chosen estimator is the 2D pose lifted with depth (Orbbec's default)."""
        option = self.skeleton_option()
        return option == "lifted" or (self.kind_key() == "orbbec" and option is None)

    def _skeleton_changed(self) -> None:
        self._form.setRowVisible(self.pose_row, self._lifted())
        self.changed.emit()

    def bind_settings(self, widgets: dict[QWidget, Iterable[str]]) -> None:
        """Enable each of ``widgets`` (sensor settings elsewhere in the tab) only while the
        chosen source kind is one of its kinds ("synthetic", "ntu", "mkv", "kinect", "video",
        "webcam", "orbbec"): a file source plays at what it was recorded with, and the synthetic
        source has no depth."""
        for widget, kinds in widgets.items():
            self._settings[widget] = (tuple(kinds), widget.toolTip())
        self._enable_settings()

    def _enable_settings(self) -> None:
        key = self.kind_key()
        for widget, (kinds, tip) in self._settings.items():
            on = key in kinds
            widget.setEnabled(on)
            reason = "the file's own" if key in PATH_KINDS else f"not used by a {key} source"
            widget.setToolTip(tip if on else f"{tip + chr(10) if tip else ''}({reason})")

    def _browse(self) -> None:
        key = self.kind_key()
        if key == "mkv":
            path, _ = QFileDialog.getOpenFileName(self, "Kinect recording", "", "MKV (*.mkv)")
        elif key == "video":
            path, _ = QFileDialog.getOpenFileName(
                self, "Video of people", "", "Video (*.mp4 *.avi *.mov *.mkv *.webm);;All (*)"
            )
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "NTU skeleton file (cancel to pick a folder)", "", "Skeleton (*.skeleton)"
            )
            if not path:
                path = QFileDialog.getExistingDirectory(self, "Folder of .skeleton files")
        if path:
            self.path.setText(path)

    def _browse_pose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "RTMPose ONNX model", "", "ONNX (*.onnx)")
        if path:
            self.pose_model.setText(path)

    def find_devices(self) -> None:
        """Enumerate devices off the UI thread (opening the SDK can take a second)."""
        key = self.kind_key()
        self.refresh.setEnabled(False)
        self.device.clear()
        self._devices_of = key
        find = enumerate_orbbec_devices if key == "orbbec" else enumerate_kinect_devices
        what = "Orbbec" if key == "orbbec" else "Azure Kinect"

        def done(names: list[str]) -> None:
            self.device.addItems(names)
            self.message.emit(f"{len(names)} {what} device(s) found")

        run_task(
            lambda report, cancelled: find(),
            self,
            result=done,
            error=self.message.emit,
            finished=lambda: self.refresh.setEnabled(True),
        )

    def estimator_options(self) -> dict[str, object]:
        """The options that choose the skeleton estimator (and its model file)."""
        key = self.kind_key()
        options: dict[str, object] = {}
        if key in SKELETONS and self.skeleton_option() is not None:
            options["skeleton"] = self.skeleton_option()
        if self._lifted() and self.pose_model.text().strip():
            options["pose_model"] = self.pose_model.text().strip()
        if key in CAMERA_ONLY_KINDS and self.estimator.currentText():
            options["estimator"] = self.estimator.currentText()
            options["people"] = self.people.value()
        return options

    def spec(self, options: dict[str, object] | None = None) -> str:
        key = self.kind_key()
        options = {**(options or {}), **self.estimator_options()}
        if key in PATH_KINDS:
            return compose_spec(key, self.path.text().strip(), options)
        if key in DEVICE_KINDS:
            index = self.device.currentText().split(":", 1)[0].strip()
            return compose_spec(key, index, options)
        if key == "webcam":
            return compose_spec(key, str(self.webcam.value()), options)
        return compose_spec(key, self.preset.currentText(), options)

    def problem(self, options: dict[str, object] | None = None) -> str | None:
        """Why the chosen source cannot start, in one sentence (None when it can): the sources
        are built without being opened, which loads their estimator and model files, and a
        device kind's SDK is imported. Tabs call this before starting a worker."""
        from capture.registry import open_sources
        from xmkd.errors import XmkdError, require

        try:
            sources = open_sources(self.spec(options))
            key = self.kind_key()
            if key == "orbbec":
                from capture.orbbec import ORBBEC_HINT

                require("pyorbbecsdk", "orbbec", "Orbbec capture", hint=ORBBEC_HINT)
            elif key == "kinect":
                from capture.kinect import PYK4A_HINT

                require("pyk4a", "kinect", "Azure Kinect capture", hint=PYK4A_HINT)
        except XmkdError as exc:
            return str(exc)
        for source in sources:  # built only to check; release what they loaded
            close = getattr(getattr(source, "estimator", None), "close", None)
            pose2d = getattr(source, "pose2d", None)
            for release in (close, getattr(pose2d, "close", None)):
                if callable(release):
                    release()
        return None
