"""Option values are checked when the command line is parsed; the config dataclasses check the
same bounds for the Python API and the GUI (issue 9, section 4: CLI values).

Each value the issue reported (a traceback, or a silent acceptance such as ``--tau 0`` training to
NaN losses with exit code 0) is refused here with exit code 2 and one line naming the option.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pytest

from xmkd.cli import build_parser, main
from xmkd.config import (
    DataConfig,
    DistillConfig,
    EvalConfig,
    LabelConfig,
    OptimConfig,
    TeacherConfig,
    distill_preset,
    teacher_preset,
)


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def refused(parser: argparse.ArgumentParser, argv: list[str], capsys) -> str:
    """The one stderr line of a refused command line (exit code 2)."""
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------------- the reported values
@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--epochs", "0"], "--epochs", "must be a positive integer, got 0"),
        (["--epochs", "-1"], "--epochs", "must be a positive integer, got -1"),
        (["--batch-size", "0"], "--batch-size", "must be a positive integer, got 0"),
        (["--k", "0"], "--k", "from 1 to 16"),
        (["--k", "-1"], "--k", "got -1"),
        (["--k", "200"], "--k", "got 200"),
        (["--tau", "0"], "--tau", "(0, 1000]"),
        (["--mutual-tau", "0"], "--mutual-tau", "got 0"),
        (["--noise", "2"], "--noise", "[0, 1)"),
        (["--window", "0"], "--window", "got 0"),
        (["--width", "0"], "--width", "got 0"),
        (["--lr", "nan"], "--lr", "got nan"),
        (["--lr", "inf"], "--lr", "got inf"),
        (["--students", "stgcn,bogus"], "--students", "stgcn, hcn"),
        (["--eval-every", "-1"], "--eval-every", "non-negative"),
        (["--seed", "-1"], "--seed", "32-bit"),
        (["--milestones", "a,b"], "--milestones", "e.g. 10,50"),
        (["--workers", "-1"], "--workers", "got -1"),
        (["--device", "gpu"], "--device", "auto, cpu, cuda or cuda:N"),
    ],
)
def test_distill_values_refused(parser, tmp_path, capsys, args, option, says):
    line = refused(parser, ["distill", "--out", str(tmp_path / "run"), *args], capsys)
    assert line.startswith(f"xmkd distill: error: argument {option}")
    assert says in line


@pytest.mark.parametrize(
    ("argv", "option", "says"),
    [
        (["teacher", "train", "--epochs", "0"], "--epochs", "positive integer"),
        (["teacher", "train", "--lr", "nan"], "--lr", "got nan"),
        (["teacher", "train", "--width", "0"], "--width", "got 0"),
        (["teacher", "train", "--segments", "0"], "--segments", "got 0"),
        (["teacher", "train", "--batch-size", "0"], "--batch-size", "got 0"),
    ],
)
def test_teacher_values_refused(parser, tmp_path, capsys, argv, option, says):
    line = refused(parser, [*argv, "--out", str(tmp_path / "run")], capsys)
    assert line.startswith(f"xmkd teacher train: error: argument {option}")
    assert says in line


def test_eval_top_k_zero_refused(parser, tmp_path, capsys):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"x")
    line = refused(parser, ["eval", str(ckpt), "--top-k", "0"], capsys)
    assert line == "xmkd eval: error: argument --top-k: must be a positive integer, got 0"


def test_reproduce_seeds_zero_and_unknown_only_refused(parser, tmp_path, capsys):
    out = ["--out", str(tmp_path / "rep")]
    line = refused(parser, ["reproduce", *out, "--seeds", "0"], capsys)
    assert "argument --seeds: must be an integer from 1 to 100" in line
    line = refused(parser, ["reproduce", *out, "--only", "bogus"], capsys)
    assert "argument --only: unknown run keys bogus; choose from stgcn_full," in line
    # a key of the protocol that --quick does not run would select nothing
    line = refused(parser, ["reproduce", *out, "--quick", "--only", "hcn_full"], capsys)
    assert "argument --only: hcn_full not among the --quick runs" in line
    args = parser.parse_args(["reproduce", *out, "--only", "stgcn_ce, hcn_ce_k2"])
    assert args.only == "stgcn_ce, hcn_ce_k2"  # run() splits it, as before


@pytest.mark.parametrize("frames", ["1e9", "1000000000", "1001", "7"])
def test_synth_frames_bounded(parser, tmp_path, capsys, frames):
    """A billion frames per clip used to reach the generator and try to allocate them."""
    line = refused(parser, ["synth", "--out", str(tmp_path / "s"), "--frames", frames], capsys)
    assert "argument --frames: must be an integer from 8 to 1000" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["distill", "--out", "{x}"],
        ["synth", "--out", "{x}"],
        ["reproduce", "--out", "{x}"],
        ["demo", "--out", "{x}"],
        ["teacher", "train", "--out", "{x}"],
        ["record", "--source", "synthetic", "--setup", "1", "--performer", "1", "--out", "{x}"],
    ],
    ids=lambda a: a[0] if a[0] != "teacher" else "teacher",
)
def test_out_under_proc_refused_before_any_work(parser, capsys, argv):
    argv = [a.replace("{x}", "/proc/x") for a in argv]
    line = refused(parser, argv, capsys)
    assert line.endswith(
        "error: argument --out: cannot create the folder /proc/x (No such file or directory)"
    )


def test_out_that_is_a_file_refused(parser, tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("data")
    line = refused(parser, ["synth", "--out", str(f)], capsys)
    assert line.endswith(f"argument --out: {f} is a file, not a folder")
    line = refused(parser, ["synth", "--out", str(f / "sub")], capsys)
    assert "cannot create the folder" in line and f"({f} is a file)" in line
    assert f.read_text() == "data"  # nothing written over it


def test_an_out_folder_is_not_created_when_parsing(parser, tmp_path):
    out = tmp_path / "a" / "b"
    args = parser.parse_args(["synth", "--out", str(out)])
    assert args.out == str(out) and not (tmp_path / "a").exists()
    assert list(tmp_path.iterdir()) == []  # the write probe left nothing behind


# ------------------------------------------------------------------------ the other subcommands
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["live", "--checkpoint", "{file}", "--every", "0"], "--every"),
        (["live", "--checkpoint", "{file}", "--top", "0"], "--top"),
        (["live", "--checkpoint", "{file}", "--alpha", "0"], "--alpha"),
        (["live", "--checkpoint", "{file}", "--history", "0"], "--history"),
        (["live", "--checkpoint", "{file}", "--max-seconds", "-1"], "--max-seconds"),
        (["live", "--checkpoint", "{file}", "--source", "bogus"], "--source"),
        (["live", "--checkpoint", "{file}", "--source", "ntu:{missing}"], "--source"),
        (["live", "--checkpoint", "{missing}"], "--checkpoint"),
        (["live", "--checkpoint", "{dir}"], "--checkpoint"),
        (["export", "{file}", "--opset", "16"], "--opset"),
        (["export", "{file}", "--max-batch", "0"], "--max-batch"),
        (["export", "{file}", "--out", "{dir}"], "--out"),
        (["export", "{missing}"], "checkpoint"),
        (["flow", "{dir}", "--short-side", "0"], "--short-side"),
        (["flow", "{file}"], "session"),
        (["label", "--teacher", "{file}", "--out", "{dir}"], "--out"),
        (["label", "--teacher", "{file}", "--out", "{new}", "--save-every", "0"], "--save-every"),
        (["prepare-ntu", "--skeletons", "{dir}", "--out", "{new}", "--workers", "0"], "--workers"),
        (["prepare-ntu", "--skeletons", "{file}", "--out", "{new}"], "--skeletons"),
        (
            ["prepare-ntu", "--skeletons", "{dir}", "--out", "{new}", "--teacher-subjects", "a"],
            "--teacher-subjects",
        ),  # fmt: skip
        (["record", "--source", "synthetic", "--setup", "0", "--performer", "1"], "--setup"),
        (
            ["record", "--source", "synthetic", "--setup", "1", "--performer", "1000"],
            "--performer",
        ),  # fmt: skip
        (
            [
                "record",
                "--source",
                "synthetic",
                "--setup",
                "1",
                "--performer",
                "1",
                "--clip-seconds",
                "0",
            ],
            "--clip-seconds",
        ),  # fmt: skip
        (
            [
                "record",
                "--source",
                "synthetic",
                "--setup",
                "1",
                "--performer",
                "1",
                "--jpeg-quality",
                "101",
            ],
            "--jpeg-quality",
        ),  # fmt: skip
        (
            [
                "record",
                "--source",
                "synthetic",
                "--setup",
                "1",
                "--performer",
                "1",
                "--session",
                "../x",
            ],
            "--session",
        ),  # fmt: skip
        (["recover", "{missing}"], "session"),
        (["inspect", "{missing}"], "file"),
        (["synth", "--out", "{new}", "--classes", "61"], "--classes"),
        (["synth", "--out", "{new}", "--workers", "0"], "--workers"),
        (["demo", "--epochs", "0"], "--epochs"),
        (["reproduce", "--student-width", "nan"], "--student-width"),
        (["gui", "--settings", "{dir}"], "--settings"),
    ],
)
def test_other_commands_refuse_bad_values(parser, tmp_path, capsys, argv, option):
    (tmp_path / "d").mkdir()
    (tmp_path / "f.pt").write_bytes(b"x")
    names = {
        "file": str(tmp_path / "f.pt"),
        "dir": str(tmp_path / "d"),
        "missing": str(tmp_path / "missing"),
        "new": str(tmp_path / "new"),
    }
    line = refused(parser, [a.format(**names) for a in argv], capsys)
    assert f"error: argument {option}" in line


# ------------------------------------------------------------------------ options used together
def test_hcn_window_must_be_a_multiple_of_16(parser, tmp_path, capsys):
    out = ["distill", "--out", str(tmp_path / "run")]
    line = refused(parser, [*out, "--students", "stgcn,hcn", "--window", "20"], capsys)
    assert line.endswith("argument --window: HCN students need a multiple of 16 frames, got 20")
    refused(parser, [*out, "--arch", "hcn", "--k", "2", "--window", "24"], capsys)
    assert parser.parse_args([*out, "--arch", "hcn", "--window", "48"]).window == 48
    assert parser.parse_args([*out, "--window", "20"]).window == 20  # ST-GCN takes any window


def test_too_many_students_refused(parser, tmp_path, capsys):
    argv = ["distill", "--out", str(tmp_path / "run"), "--students", ",".join(["stgcn"] * 17)]
    assert "at most 16 students, got 17" in refused(parser, argv, capsys)


def test_export_opset_matches_the_exporter(parser, tmp_path, capsys):
    ckpt = tmp_path / "s.pt"
    ckpt.write_bytes(b"x")
    line = refused(parser, ["export", str(ckpt), "--opset", "17"], capsys)
    assert "the dynamo exporter writes opset 18 or newer, got 17" in line
    line = refused(
        parser, ["export", str(ckpt), "--exporter", "torchscript", "--opset", "21"], capsys
    )
    assert "torchscript exporter writes opsets 17 to 20" in line
    assert parser.parse_args(["export", str(ckpt), "--exporter", "torchscript", "--opset", "17"])


def test_good_values_keep_their_types(parser, tmp_path):
    ckpt = tmp_path / "s.pt"
    ckpt.write_bytes(b"x")
    args = parser.parse_args(
        ["distill", "--out", str(tmp_path / "r"), "--epochs", "1e3", "--tau", "2.5",
         "--noise", "0", "--milestones", "10,50", "--device", "CUDA:1", "--workers", "0",
         "--sessions", str(tmp_path), "--progress-json", "-"]
    )  # fmt: skip
    assert (args.epochs, args.tau, args.noise, args.milestones) == (1000, 2.5, 0.0, [10, 50])
    assert args.device == "cuda:1" and args.sessions == [str(tmp_path)]
    assert args.progress_json == "-" and isinstance(args.out, str)
    exp = parser.parse_args(["export", str(ckpt), "--out", str(tmp_path / "m.onnx")])
    assert isinstance(exp.checkpoint, Path) and isinstance(exp.out, Path)


def test_main_reports_a_missing_required_option_in_one_line(tmp_path, capsys):
    assert main(["distill", "--epochs", "3"]) == 2  # main returns the exit code, as for errors
    err = capsys.readouterr().err
    assert err == "xmkd distill: error: the following arguments are required: --out\n"
    assert main(["distill", "--out", str(tmp_path / "r"), "--tau", "0"]) == 2
    assert capsys.readouterr().err.startswith("xmkd distill: error: argument --tau/--kd-tau:")
    with pytest.raises(SystemExit) as exc:  # --help and --version exit as argparse does
        main(["--version"])
    assert exc.value.code == 0


# -------------------------------------------------------- the Python API: the same bounds
@pytest.mark.parametrize(
    "make",
    [
        lambda: DistillConfig(kd_tau=0.0),
        lambda: DistillConfig(kd_tau=math.nan),
        lambda: DistillConfig(mutual_tau=-1.0),
        lambda: DistillConfig(supervision="full", noise=2.0),
        lambda: DistillConfig(supervision="full", noise=1.0),
        lambda: DistillConfig(epochs=0),
        lambda: DistillConfig(epochs=-1),
        lambda: DistillConfig(batch_size=0),
        lambda: DistillConfig(eval_every=-1),
        lambda: DistillConfig(log_every=0),
        lambda: DistillConfig(seed=-1),
        lambda: DistillConfig(kl_direction="sideways"),
        lambda: distill_preset("synthetic", ["stgcn"], kd_tau=0.0),
        lambda: OptimConfig(lr=math.nan),
        lambda: OptimConfig(lr=0.0),
        lambda: OptimConfig(lr=math.inf),
        lambda: OptimConfig(momentum=1.5),
        lambda: OptimConfig(weight_decay=-1e-4),
        lambda: OptimConfig(gamma=0.0),
        lambda: OptimConfig(clip_grad_norm=math.nan),
        lambda: OptimConfig(milestones=[-5]),
        lambda: DataConfig(num_workers=-1),
        lambda: TeacherConfig(num_segments=0),
        lambda: TeacherConfig(epochs=0),
        lambda: TeacherConfig(batch_size=0),
        lambda: TeacherConfig(dropout=1.0),
        lambda: TeacherConfig(crop_size=0),
        lambda: TeacherConfig(scales=[0.0]),
        lambda: teacher_preset("synthetic", epochs=0),
        lambda: LabelConfig(batch_size=0),
        lambda: LabelConfig(save_every=0),
        lambda: EvalConfig(top_k=0),
        lambda: EvalConfig(ensembles=["median"]),
    ],
)
def test_configs_refuse_the_same_values(make):
    with pytest.raises(ValueError, match="must be"):
        make()


def test_configs_keep_accepting_their_defaults_and_presets():
    for arch in ("stgcn", "hcn"):
        assert distill_preset("synthetic", [arch, arch]).k == 2
        assert distill_preset("paper", [arch]).resolved_epochs() > 0
    assert DistillConfig(supervision="full", noise=0.25, epochs=None, batch_size=None).noise == 0.25
    assert teacher_preset("paper", "flow").optim.milestones == [190, 300]
    assert OptimConfig(lr=1, milestones=[0, 10]).lr == 1  # ints are numbers too
    assert DistillConfig.from_dict(DistillConfig().to_dict()) == DistillConfig()


# ---------------------------------------------------------- end to end: one line, no traceback
@pytest.mark.parametrize(
    "argv",
    [
        ["distill", "--epochs", "0", "--out", "{tmp}/run"],
        ["synth", "--out", "/proc/x", "--frames", "24"],
    ],
    ids=["distill-epochs-0", "synth-out-proc"],
)
def test_subprocess_exit_2_one_line(tmp_path, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "xmkd", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"xmkd {argv[0]}: error: argument ")
    assert not (tmp_path / "run").exists()
