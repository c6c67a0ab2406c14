"""Distill tab driving the real `xmkd distill` in a child process on packed NTU samples:
progress and curves from its JSON lines, Cancel (clean stop after a checkpoint), Resume to the
end, then the one-click export starts `xmkd export` on the run's best checkpoint."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6", reason="the gui extra is not installed")

from gui.distill_tab import DistillTab, format_eta  # noqa: E402
from tests.gui_helpers import wait_until  # noqa: E402


@pytest.fixture(scope="module")
def packed(generated_ntu_samples, tmp_path_factory):
    """The 5 generated NTU samples packed like `xmkd prepare-ntu` (x-sub 60 parts)."""
    from xmkd.ntu.pack import PackOptions, pack_ntu

    out = tmp_path_factory.mktemp("packed")
    pack_ntu(generated_ntu_samples[0].parent, out, PackOptions(), workers=1, progress=False)
    return out


def test_format_eta():
    assert format_eta(75) == "ETA 1:15" and format_eta(3725) == "ETA 1:02:05"
    assert format_eta(None) == "ETA --" and format_eta(float("nan")) == "ETA --"


def test_command_line_follows_the_form(qtbot, tmp_path):
    tab = DistillTab()
    qtbot.addWidget(tab)
    tab.data_kind.setCurrentText("sessions")
    for name in ("a", "b"):  # the CLI checks that its paths exist
        (tmp_path / name).mkdir()
    (tmp_path / "labels.npz").write_bytes(b"")
    tab.data_path.setText(f"{tmp_path / 'a'}; {tmp_path / 'b'}")
    tab.preset.setCurrentText("paper")  # (empty folders: no data to choose it from)
    tab.labels.setText(str(tmp_path / "labels.npz"))
    tab.arch.setCurrentIndex(2)  # stgcn + hcn alternating
    tab.k.setValue(3)
    tab.loss.setCurrentIndex(2)  # KL
    tab.tau.setValue(4)
    tab.epochs.setValue(5)
    tab.out_dir.setText(str(tmp_path / "run"))
    tab.extra.setText("--lr 0.05")
    args = tab.distill_args()
    assert args[:3] == ["distill", "--sessions", str(tmp_path / "a")]
    assert str(tmp_path / "b") in args
    assert args[args.index("--students") + 1 :][:3] == ["stgcn", "hcn", "stgcn"]
    assert args[args.index("--supervision") + 1] == "kl" and "--no-mutual" in args
    assert args[args.index("--tau") + 1] == "4" and args[args.index("--epochs") + 1] == "5"
    assert args[-4:] == ["--lr", "0.05", "--progress-json", "-"]
    assert "--resume" in tab.distill_args(resume=True)
    assert "--precision" not in args and "--deterministic" not in args
    tab.precision.setCurrentText("bf16")
    tab.deterministic.setChecked(True)
    args = tab.distill_args()
    assert args[args.index("--precision") + 1] == "bf16" and "--deterministic" in args
    from xmkd.cli import build_parser
    from xmkd.commands.distill import build_config  # the CLI accepts what the form writes

    config = build_config(build_parser().parse_args(args))
    assert config.precision == "bf16" and config.deterministic
    tab.loss.setCurrentIndex(0)  # the paper's CE + mutual
    args = tab.distill_args()
    assert args[args.index("--supervision") + 1] == "ce" and "--no-mutual" not in args
    assert not tab.resume_button.isEnabled() and not tab.export_button.isEnabled()


def test_distill_cancel_resume_and_export(qtbot, tmp_path, packed):
    tab = DistillTab()
    qtbot.addWidget(tab)
    tab.resize(1200, 800)
    tab.show()
    run = tmp_path / "run"
    tab.data_kind.setCurrentText("packed NTU")
    tab.data_path.setText(str(packed))
    tab.loss.setCurrentIndex(3)  # full supervision: the packed labels, no teacher cache needed
    tab.arch.setCurrentText("stgcn")
    tab.k.setValue(2)
    tab.width.setValue(0.125)
    tab.epochs.setValue(2)
    tab.device.setCurrentText("cpu")
    tab.preset.setCurrentText("synthetic")
    tab.split.setCurrentText("teacher_train")
    tab.extra.setText("--window 16 --fit resize --eval-every 2 --quiet")  # validate once
    tab.out_dir.setText(str(run))
    tab.export_when_done.setChecked(False)  # exported by its own button below

    tab.start_button.click()
    assert tab.job.is_running() and tab.cancel_button.isEnabled()
    wait_until(qtbot, lambda: any(e.get("event") == "epoch" for e in tab.events), 90, "epoch 1")
    tab.cancel_button.click()  # SIGINT: the trainer stops; last.pt of epoch 1 stays
    wait_until(qtbot, lambda: not tab.job.is_running(), 30, "cancelled")
    assert "cancelled" in tab.error.text() and "cancelled" in tab.progress.format()
    assert (run / "last.pt").is_file() and tab.resume_button.isEnabled()
    start = next(e for e in tab.events if e["event"] == "start")
    assert start["epochs"] == 2 and start["k"] == 2
    done_before = max(e["epoch"] for e in tab.events if e["event"] == "epoch")

    tab.start_button.click()  # a new run would overwrite the checkpoints: refused
    assert not tab.job.is_running() and "already holds a run" in tab.error.text()
    tab.resume_button.click()
    wait_until(qtbot, lambda: not tab.job.is_running(), 120, "resumed run ends")
    assert tab.finished_ok, tab.error.text() + "\n" + tab.log.toPlainText()[-2000:]
    resumed = [e for e in tab.events if e["event"] == "start" and e.get("resumed_from")]
    assert resumed and resumed[-1]["start_epoch"] >= done_before
    epochs = [e["epoch"] for e in tab.events if e["event"] == "epoch"]
    assert epochs[-1] == 2
    assert tab.progress.value() == 1000 and "ready to export" in tab.progress.format()
    for student in ("student0", "student1"):
        xs, ys = tab.curves.data[("loss", student)]
        assert xs[-1] == 2.0 and len(xs) == len(epochs)  # resume keeps the earlier points
    for series in ("student0", "student1", "ensemble_mean"):  # accuracy on the Test part
        assert ("validation accuracy", series) in tab.curves.data
    assert ("teacher agreement", "student1") in tab.curves.data
    assert tab.best_checkpoint == str(run / "best.pt") and tab.export_button.isEnabled()

    # One click exports the best checkpoint (a real `xmkd export`; cancelled here to keep the
    # suite short: the export itself is the engines part's test).
    tab.export_button.click()
    assert tab.job.is_running() and tab.job_kind == "export"
    args = tab.job.process.arguments()
    assert args[-4:] == ["export", str(run / "best.pt"), "--format", "onnx"]
    tab.cancel_button.click()
    wait_until(qtbot, lambda: not tab.job.is_running(), 30, "export cancelled")
    assert "xmkd export: cancelled" in tab.error.text()


def test_progress_events_drive_bar_eta_and_curves(qtbot):
    # Events in the schema xmkd.train.progress documents (start, step, epoch, end).
    tab = DistillTab()
    qtbot.addWidget(tab)
    tab.job_kind = "distill"
    loss = {"student0": {"sup": 1.0, "mutual": 0.1, "total": 1.1}}
    tab.on_event({"event": "start", "epochs": 4, "steps_per_epoch": 10, "start_epoch": 0})
    assert tab.progress.value() == 0
    tab.on_event({"event": "step", "epoch": 1, "step": 5, "losses": loss,
                  "teacher_agreement": [0.5], "samples_per_s": 100.0, "eta_s": 90})  # fmt: skip
    assert tab.progress.value() == 125 and tab.eta.text() == "ETA 1:30"
    assert tab.rate.text() == "100 samples/s"
    tab.on_event({"event": "epoch", "epoch": 1, "losses": loss, "teacher_agreement": [0.6],
                  "val": {"ensemble_mean": 0.3}, "eta_s": 30})  # fmt: skip
    tab.on_event({"event": "epoch", "epoch": 2, "losses": loss, "teacher_agreement": [0.7],
                  "val": {"ensemble_mean": 0.4}, "eta_s": 20})  # fmt: skip
    assert tab.progress.value() == 500 and "epoch 2/4" in tab.progress.format()
    # epoch 1 had a step point: its mean is not interleaved; epoch 2 had none: its mean is shown
    assert tab.curves.data[("loss", "student0")] == ([0.5, 2.0], [1.1, 1.1])
    assert tab.curves.data[("teacher agreement", "student0")] == ([0.5, 2.0], [0.5, 0.7])
    assert tab.curves.data[("validation accuracy", "ensemble_mean")] == ([1.0, 2.0], [0.3, 0.4])
    tab.on_event({"event": "end", "best": 0.4, "best_epoch": 2, "checkpoint": "run/best.pt"})
    assert tab.best_checkpoint == "run/best.pt" and "best 40.0% (epoch 2)" in tab.rate.text()


def test_preset_defaults_to_what_the_data_calls_for(qtbot, tmp_path):
    """A new form chooses the preset from the selected data, as ``xmkd distill`` does: the
    CPU-sized one for synthetic sessions (it defaulted to the paper's: hours on a CPU), the
    paper's for packed NTU RGB+D; the note beside it says which and why, and the command line
    carries it."""
    from xmkd.synth.generator import SynthConfig, generate

    session = tmp_path / "synth"
    generate(SynthConfig(classes=2, subjects=(1,), views=(1,), repetitions=1, frames=8), session)
    tab = DistillTab()
    qtbot.addWidget(tab)
    tab.data_kind.setCurrentText("sessions")
    tab.data_path.setText(str(session))
    args = tab.distill_args()
    assert args[args.index("--preset") + 1] == "synthetic"
    assert "preset synthetic" in tab.preset_note.text() and "synthetic" in tab.preset_note.text()

    tab.data_kind.setCurrentText("packed NTU")
    tab.data_path.setText(str(tmp_path / "ntu60"))
    assert tab.distill_args()[tab.distill_args().index("--preset") + 1] == "paper"
    assert tab.preset_note.text().startswith("preset paper")

    tab.data_kind.setCurrentText("sessions")
    tab.data_path.setText(str(tmp_path / "missing"))
    assert "missing" in tab.preset_note.text()
    tab.out_dir.setText(str(tmp_path / "run"))
    tab.start_button.click()  # one sentence naming the folder, and no job
    assert not tab.job.is_running() and tab.error.text().startswith("data: ")
    assert "missing" in tab.error.text()

    tab.preset.setCurrentText("paper")  # an explicit choice wins
    tab.data_path.setText(str(session))
    assert tab.distill_args()[tab.distill_args().index("--preset") + 1] == "paper"
