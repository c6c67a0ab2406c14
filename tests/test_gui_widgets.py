"""GUI building blocks: views, bars, timeline, curves, confusion matrix, mailbox, subprocess
protocol, settings persistence, the PySide6 refcount guard and the `xmkd gui` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

import pyqtgraph as pg  # noqa: E402

from gui.confusion import ConfusionView  # noqa: E402
from gui.curves import Curves  # noqa: E402
from gui.prob_bars import ProbBars  # noqa: E402
from gui.skeleton_view import SkeletonView, bone_segments  # noqa: E402
from gui.timeline import Timeline  # noqa: E402
from gui.video_view import VideoView  # noqa: E402
from gui.workers import JsonLinesProcess, LatestSlot, preview_image  # noqa: E402
from xmkd.skeleton import NTU_BONES  # noqa: E402


def test_singleton_refcount_guard_keeps_pyside_calls_safe():
    from PySide6.QtCore import QObject, Signal

    from gui.qtfix import protect_singletons

    class Emitter(QObject):
        ping = Signal()

    protect_singletons()
    emitter = Emitter()
    # Without the guard, on PySide6 6.12 / Python 3.11, each emit() steals a reference to True
    # and each void call one to None: 20000 of them abort the interpreter.
    for _ in range(20000):
        emitter.ping.emit()
        emitter.setObjectName("x")
    assert sys.getrefcount(True) > 1000 and sys.getrefcount(None) > 1000


def test_skeleton_view_draws_bones_of_each_body(qtbot, generated_ntu_samples):
    from xmkd.ntu import read_skeleton

    seq = read_skeleton(generated_ntu_samples[1])  # two people
    view = SkeletonView(allow_3d=False)
    qtbot.addWidget(view)
    bodies = [seq.joints[i, :, :3] for i in range(2)]
    view.set_bodies(bodies)
    xs, ys = view.front._bones[1].getData()
    assert len(xs) == 2 * len(NTU_BONES)
    child, parent = NTU_BONES[0]
    assert xs[0] == pytest.approx(bodies[1][child, 0])
    assert ys[1] == pytest.approx(bodies[1][parent, 1])
    zs, _ = view.side._bones[0].getData()
    assert zs[0] == pytest.approx(bodies[0][child, 2])  # side view plots depth
    view.set_bodies([])
    assert view.front._bones[0].getData()[0] is None or len(view.front._bones[0].getData()[0]) == 0
    ex, ey = bone_segments(bodies[0], (0, 1))
    assert ex.shape == (2 * len(NTU_BONES),)


def test_video_view_scales_joint_pixels_to_the_preview(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    bgr = np.zeros((1080, 1920, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    rgb, scale = preview_image(bgr, 960)
    assert rgb.shape == (540, 960, 3) and scale == 0.5
    assert rgb[0, 0].tolist() == [255, 0, 0]  # converted to RGB
    pixels = np.tile([[1000.0, 500.0]], (25, 1))
    view.set_frame(rgb, scale, [pixels])
    x, y = view._overlays[0][1].getData()
    assert x[0] == pytest.approx(500.0) and y[0] == pytest.approx(250.0)
    assert view.frames_shown == 1 and not view.text.isVisible()
    view.clear("nothing")
    assert view.text.isVisible() is not None and not view.image.isVisible()


def test_prob_bars_keep_the_k_most_likely_sorted(qtbot):
    bars = ProbBars(3)
    qtbot.addWidget(bars)
    bars.set_probabilities([("a", 0.1), ("b", 0.5), ("c", 0.05), ("d", 0.3)])
    assert [name for name, _ in bars.items] == ["b", "d", "a"]
    bars.resize(300, 100)
    assert not bars.grab().isNull()


def test_timeline_merges_repeated_labels_and_forgets_old_ones(qtbot):
    line = Timeline(window_s=10.0)
    qtbot.addWidget(line)
    for t, label in [(0, "wave"), (1, "wave"), (2, "sit"), (3, "sit"), (4, "wave")]:
        line.add(float(t), label)
    assert line.labels() == ["wave", "sit", "wave"]
    assert line.segments[0][:2] == [0.0, 2.0]
    line.add(30.0, "jump")
    assert line.labels() == ["wave", "jump"]  # only what the 10 s window still shows
    assert not line.grab().isNull()


def test_curves_keep_one_series_per_name(qtbot):
    curves = Curves()
    qtbot.addWidget(curves)
    curves.add("loss", "student0", 0.5, 2.0)
    curves.add("loss", "student0", 1.0, 1.5)
    curves.add("loss", "student1", 1.0, 1.7)
    curves.add("validation accuracy", "ensemble", 1.0, 0.4)
    assert curves.data[("loss", "student0")] == ([0.5, 1.0], [2.0, 1.5])
    assert len(curves.data) == 3
    curves.clear()
    assert curves.data == {}


def test_confusion_view_normalises_rows(qtbot):
    view = ConfusionView()
    qtbot.addWidget(view)
    matrix = np.array([[3, 1], [0, 2]])
    view.set_matrix(matrix, ["A001", "A002"])
    image = view.image.image
    assert image[0].tolist() == [0.75, 0.25] and image[1].tolist() == [0.0, 1.0]
    assert [(i, j, text) for i, j, text, _ in view.counts.cells] == [
        (0, 0, "3"),
        (0, 1, "1"),
        (1, 1, "2"),
    ]  # a count in each non-empty cell


def test_latest_slot_replaces_instead_of_queueing():
    slot = LatestSlot()
    assert slot.put(1) is True  # empty: notify
    assert slot.put(2) is False  # full: replaced, no second notification
    assert slot.replaced == 1 and not slot.empty()
    assert slot.take() == 2 and slot.take() is None and slot.empty()


def _script(tmp_path, body: str):
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_json_lines_process_parses_events_and_reports_errors(qtbot, tmp_path):
    # A test-only child process that speaks the JSON-lines protocol, then fails.
    script = _script(
        tmp_path,
        """
        import json, sys
        print(json.dumps({"event": "start", "epochs": 2}), flush=True)
        print("not json", flush=True)
        sys.stdout.write(json.dumps({"event": "epoch", "epoch": 1}) + "\\n")
        sys.stderr.write("xmkd distill: error: the label cache is missing\\n")
        sys.exit(2)
        """,
    )
    job = JsonLinesProcess()
    events, lines = [], []
    job.event.connect(events.append)
    job.output.connect(lines.append)
    with qtbot.waitSignal(job.finished, timeout=20000) as blocker:
        job.start(sys.executable, [str(script)])
    code, message = blocker.args
    assert [e["event"] for e in events] == ["start", "epoch"]
    assert "not json" in lines
    assert code == 2 and message == "xmkd distill: error: the label cache is missing"


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_json_lines_process_cancel_interrupts_the_child(qtbot, tmp_path, inherited):
    """Cancel reaches the child as SIGINT, also when the GUI itself was started with SIGINT
    ignored (nohup, a background job of a script), which children would otherwise inherit."""
    import signal

    saved = signal.getsignal(signal.SIGINT)
    if inherited == "ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run_cancelled_child(qtbot, tmp_path)
    finally:
        signal.signal(signal.SIGINT, saved)


def run_cancelled_child(qtbot, tmp_path) -> None:
    # The first event is printed inside the ``try``: from then on a SIGINT reaches the clean-up
    # (printed before it, a SIGINT between the print and the ``try`` killed the child: the
    # flaky failure under load).
    script = _script(
        tmp_path,
        """
        import json, sys, time
        try:
            print(json.dumps({"event": "start"}), flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print(json.dumps({"event": "interrupted"}), flush=True)
            sys.exit(130)
        """,
    )
    job = JsonLinesProcess(grace_ms=5000)
    events = []
    job.event.connect(events.append)
    job.start(sys.executable, [str(script)])
    qtbot.waitUntil(lambda: bool(events), timeout=20000)
    with qtbot.waitSignal(job.finished, timeout=20000) as blocker:
        job.cancel()
    assert blocker.args == [130, "cancelled"]
    assert events[-1]["event"] == "interrupted"  # SIGINT reached Python: it could clean up


def test_json_lines_process_cancel_during_the_childs_start_up_waits_until_it_is_ready(
    qtbot, tmp_path
):
    """A Cancel pressed while the child is still starting (its SIGINT handling not yet set up)
    is held back until the child's first event, then reaches its clean-up: the child is not
    ended by the signal's default action half-way through its start-up."""
    script = _script(
        tmp_path,
        """
        import json, signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # start-up: a SIGINT now would kill it
        time.sleep(1.0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            print(json.dumps({"event": "start"}), flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print(json.dumps({"event": "interrupted"}), flush=True)
            sys.exit(130)
        """,
    )
    job = JsonLinesProcess(grace_ms=20000)
    events = []
    job.event.connect(events.append)
    with qtbot.waitSignal(job.started, timeout=20000):
        job.start(sys.executable, [str(script)])
    with qtbot.waitSignal(job.finished, timeout=20000) as blocker:
        job.cancel()
    assert blocker.args == [130, "cancelled"]
    assert [e["event"] for e in events] == ["start", "interrupted"]


def test_json_lines_process_survives_a_crashing_child(qtbot, tmp_path):
    script = _script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    job = JsonLinesProcess()
    with qtbot.waitSignal(job.finished, timeout=20000) as blocker:
        job.start(sys.executable, [str(script)])
    assert blocker.args[1].startswith("the process crashed")


def test_settings_and_layout_persist(qtbot, tmp_path):
    from gui.app import MainWindow
    from gui.settings import open_settings

    path = tmp_path / "settings.ini"
    window = MainWindow(open_settings(path))
    qtbot.addWidget(window)
    window.show()
    window.record.setup.setValue(7)
    window.record.session_dir.setText(str(tmp_path / "sess"))
    window.record.flow.setChecked(False)
    window.distill.k.setValue(3)
    window.distill.loss.setCurrentIndex(2)
    window.distill.tau.setValue(4.0)
    window.live.engine.setCurrentText("torch")
    window.replay.speed.setCurrentText("2x")
    window.tabs.setCurrentIndex(3)
    window.resize(701, 503)  # (the offscreen screen is 800x600; the minimum height wins)
    qtbot.wait(10)
    size = (window.width(), window.height())
    assert size[0] == 701
    window.replay.splitter.setSizes([180, 500])
    left = window.replay.splitter.sizes()[0]
    window.close()
    assert path.is_file()

    again = MainWindow(open_settings(path))
    qtbot.addWidget(again)
    again.show()
    qtbot.wait(10)
    assert again.record.setup.value() == 7
    assert again.record.session_dir.text() == str(tmp_path / "sess")
    assert again.record.flow.isChecked() is False
    assert again.distill.k.value() == 3
    assert again.distill.loss.currentIndex() == 2 and again.distill.tau.value() == 4.0
    assert again.live.engine.currentText() == "torch"
    assert again.replay.speed.currentText() == "2x"
    assert again.tabs.currentIndex() == 3
    assert (again.width(), again.height()) == size
    assert again.replay.splitter.sizes()[0] == left
    again.close()


def test_settings_ignore_stale_values(qtbot, tmp_path):
    from gui.app import MainWindow
    from gui.settings import open_settings

    path = tmp_path / "settings.ini"
    path.write_text("[distill]\nk=lots\ndevice=quantum\n[window]\ntab=x\n")
    window = MainWindow(open_settings(path))
    qtbot.addWidget(window)
    assert window.distill.k.value() == 2 and window.distill.device.currentText() == "auto"


def test_xmkd_gui_help_and_missing_extra(monkeypatch, capsys):
    from xmkd.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["gui", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "Record" in out and "--settings" in out
    # Without PySide6 the command names the extra to install, in one sentence, no traceback.
    monkeypatch.setitem(sys.modules, "PySide6.QtWidgets", None)  # makes the import fail
    assert main(["gui"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "xmkd[gui]"' in err[0] and "PySide6" in err[0]


def test_progress_events_are_json_objects():
    # The Distill tab reads exactly what xmkd.train.progress writes: one JSON object per line.
    from xmkd.train.progress import Progress

    record = Progress(None, None, enabled=True, console=False, tensorboard=False).event(
        "step", epoch=1, step=3, losses={"student0": {"total": 1.0}}
    )
    assert json.loads(json.dumps(record))["event"] == "step"


def test_deleting_a_tab_while_its_thread_winds_down_does_not_abort():
    """A tab deleted while its worker thread still runs (a live model mid-forward, a clip being
    finalized) must not destroy that QThread: Qt aborts the process when a running QThread is
    destroyed. Run in a child process, so a regression fails this test instead of the suite."""
    script = textwrap.dedent(
        """
        import os, sys, threading, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QObject, Signal
        from PySide6.QtWidgets import QApplication, QWidget
        from gui.workers import start_in_thread, wait_for_thread

        class Slow(QObject):
            finished = Signal()
            def __init__(self):
                super().__init__()
                self.started = threading.Event()
            def run(self):
                self.started.set()
                time.sleep(0.5)
                self.finished.emit()

        app = QApplication([])
        tab = QWidget()
        worker = Slow()
        worker.finished.connect(tab.close)
        start_in_thread(worker, tab)
        worker.started.wait(5)
        del tab  # the last reference: the C++ widget is deleted now, its thread still running
        app.processEvents()
        assert wait_for_thread(worker, 5000), "thread did not end"
        print("survived")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-2000:]


def test_empty_confusion_view_has_plain_axes_and_says_what_fills_it(qtbot):
    """Before any evaluation: the unit square with no tick labels and no SI scale factor on the
    axes (it showed a -500..500 "x0.001" axis), and a line saying how to get a matrix."""
    view = ConfusionView()
    qtbot.addWidget(view)
    view.resize(600, 300)
    view.show()
    qtbot.wait(20)
    (x0, x1), (y0, y1) = view.plot.viewRange()
    assert -0.1 <= x0 < x1 <= 1.1 and -0.1 <= y0 < y1 <= 1.1
    for name in ("left", "bottom"):
        axis = view.plot.getAxis(name)
        assert axis.autoSIPrefixScale == 1.0 and axis.labelUnitPrefix == ""
    assert any(
        isinstance(item, pg.TextItem) and "evaluate a folder" in item.toPlainText()
        for item in view.plot.getPlotItem().items
    )
    view.set_matrix(np.eye(2, dtype=int), ["wave hand", "bow"])
    assert not any(
        isinstance(i, pg.TextItem) and "evaluate" in i.toPlainText()
        for i in view.plot.getPlotItem().items
    )


def test_replay_confusion_matrix_is_labelled_with_class_names(qtbot):
    """The Replay tab's folder evaluation names the classes on both axes of the confusion
    matrix (it wrote action numbers there)."""
    from gui.replay_tab import ReplayTab

    tab = ReplayTab()
    qtbot.addWidget(tab)
    names = ["drink water", "a name longer than the axis can hold"]
    tab._show_evaluation(
        {
            "count": 3,
            "correct": 2,
            "accuracy": 2 / 3,
            "confusion": np.array([[1, 1], [0, 1]]),
            "labels": names,
            "classes": [0, 41],
            "failed": [],
        }
    )
    assert tab.confusion.row_names == ["drink water", "a name longer tha…"]
    assert tab.confusion.column_names == tab.confusion.row_names
    assert "A042: a name longer than the axis can hold" in tab.confusion.toolTip()


def test_confusion_counts_are_one_item_whatever_the_number_of_cells(qtbot):
    """The counts of a readable matrix are painted by one item: building a scene item per cell
    (400 for 20 classes) was the UI thread's longest slice at the end of a folder evaluation
    (the per-event CPU times are in bench/bench_gui_responsiveness.py)."""
    view = ConfusionView()
    qtbot.addWidget(view)
    view.set_matrix(np.ones((2, 2), dtype=int), ["a", "b"])
    items_small = len(view.plot.getPlotItem().items)
    view.set_matrix(np.ones((20, 20), dtype=int), [f"class {i}" for i in range(20)])
    assert len(view.plot.getPlotItem().items) == items_small
    assert len(view.counts.cells) == 400


def test_skeleton_views_settle_at_any_size(qtbot):
    """An aspect-locked view whose axes sized themselves to their tick labels could resize
    forever (tick labels -> axis width -> view width -> range -> tick labels): the Replay tab's
    event loop spun in it at some widths. Every width must settle within a few passes."""
    from gui.skeleton_view import _Projection

    view = _Projection("front (x-y)", (0, 1), ("x", "y"), centre=(0.0, 0.0))
    qtbot.addWidget(view)
    view.show()
    resizes = []
    original = view.getViewBox().resizeEvent

    def counting(event):
        resizes.append(event.newSize().width())
        original(event)

    view.getViewBox().resizeEvent = counting
    for width in range(150, 300, 3):
        view.resize(width, 394)
        before = len(resizes)
        for _ in range(20):
            pg.QtWidgets.QApplication.processEvents()
        assert len(resizes) - before <= 4, f"the view kept resizing at width {width}"
