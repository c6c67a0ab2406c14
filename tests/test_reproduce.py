"""`xmkd reproduce --quick`: the whole protocol runs; the report shows the paper beside ours."""

from __future__ import annotations

import json

import torch

from xmkd.cli import main
from xmkd.reproduce import PAPER, protocol_runs


def test_protocol_covers_every_table():
    keys = {r.key for r in protocol_runs()}
    for table in ("table3", "table4", "table5"):
        for row in PAPER[table]:
            assert row[2] in keys, row
    assert {f"stgcn_kl{t}" for t in PAPER["table2"]} <= keys
    assert {f"stgcn_noise{n}" for n in PAPER["table1"] if n} <= keys
    quick = protocol_runs(quick=True)
    assert 0 < len(quick) < len(protocol_runs())


def test_reproduce_quick_end_to_end(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "repro"
    assert main(["reproduce", "--quick", "--out", str(out), "--quiet"]) == 0
    report = (out / "report.md").read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Teacher"):
        assert heading in report
    assert "| 14 |" in report and "71.51" in report and "77.83" in report  # paper beside ours
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert set(runs) == {r.key for r in protocol_runs(quick=True)}
    assert 0.0 <= results["teacher_student_train"] <= 1.0
    two = runs["stgcn_ce_k2"][0]["test"]
    assert {"student0", "student1", "ensemble_mean", "ensemble_max"} <= set(two)
    assert all(0.0 <= v <= 1.0 for r in runs.values() for v in r[0]["test"].values())
    # a second invocation reuses every finished run (resumable) and rewrites the report
    capsys.readouterr()
    assert main(["reproduce", "--quick", "--out", str(out), "--quiet"]) == 0
    assert "[1/" not in capsys.readouterr().out
    # other settings for a run train it again instead of reusing a result they did not make
    assert main(["reproduce", "--quick", "--out", str(out), "--quiet", "--epochs", "2",
                 "--only", "stgcn_ce"]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert "settings changed" in shown and "[1/1] stgcn_ce" in shown
    again = json.loads((out / "runs" / "stgcn_ce_seed0" / "result.json").read_text())
    assert again["distill_config"]["epochs"] == 2


# ------------------------------------------------------------------ NTU from the download
def test_reproduce_ntu60_from_the_download_quick(tmp_path, capsys):
    """ingest -> teacher -> labels -> students -> report from NTU's two folders (a small NTU-like
    tree), each stage cached: a second run redoes none, other settings are refused."""
    from tests.ntu_tree import build_ntu_tree
    from xmkd.ntu.pack import PackedNTU
    from xmkd.train.label import load_labels

    torch.set_num_threads(1)
    tree = build_ntu_tree(tmp_path / "ntu", full_hd=False)
    out = tmp_path / "repro"
    base = ["reproduce", "--dataset", "ntu60", "--ntu-root", str(tree.root), "--out", str(out)]
    base += ["--quick", "--quiet", "--ingest-workers", "1"]
    # the ingestion alone first (as before torchrun), then the rest continues from it
    assert main([*base, "--stop-after", "ingest"]) == 0
    assert (out / "data" / "ntu60" / "manifest.json").is_file()
    assert not (out / "teacher").exists()
    capsys.readouterr()
    assert main([*base, "--only", "stgcn_full,stgcn_kl10,stgcn_ce_k2"]) == 0
    shown = capsys.readouterr().out
    assert "[ingest]" not in shown and "[teacher] xmkd teacher train --packed" in shown
    report = (out / "report.md").read_text()
    assert "## Stages" in report and f"--rgb {tree.rgb}" in report and "71.17" in report
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"stgcn_full", "stgcn_kl10", "stgcn_ce_k2"}
    assert 0.0 <= results["teacher_student_train"] <= 1.0
    # the teacher labelled exactly the Student-Train pairs the ingestion kept
    students = PackedNTU(out / "data" / "ntu60", "student_train").names
    assert sorted(load_labels(out / "labels.pt").names) == sorted(students)
    assert set(students) <= set(tree.splits["student_train"]) and students
    # everything cached: no stage and no run again
    assert main([*base, "--only", "stgcn_full,stgcn_kl10,stgcn_ce_k2"]) == 0
    shown = capsys.readouterr().out
    assert "[ingest]" not in shown and "[teacher]" not in shown and "[labels]" not in shown
    assert "[1/" not in shown
    # a stage asked with other settings is refused, its outputs kept
    teacher = (out / "teacher" / "teacher.pt").read_bytes()
    assert main([*base, "--teacher-epochs", "2", "--only", "stgcn_full"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stages.json" in err[0] and "teacher stage" in err[0]
    assert (out / "teacher" / "teacher.pt").read_bytes() == teacher
    # labels made through a class map are another vocabulary: not the paper's protocol
    mapped = load_labels(out / "labels.pt")
    mapped.extra["class_map"] = {"actions": [{"name": "anything", "teacher": ["A001"]}]}
    mapped.save(tmp_path / "mapped.pt")
    assert main([*base, "--labels", str(tmp_path / "mapped.pt"), "--only", "stgcn_full"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mapped.pt" in err[0] and "class map" in err[0]


def test_reproduce_ntu_refusals_are_one_sentence(tmp_path, capsys, monkeypatch):
    from tests.ntu_tree import RGB_DIR, SKELETON_DIR

    root = tmp_path / "download"
    (root / SKELETON_DIR).mkdir(parents=True)
    out = tmp_path / "repro"
    base = ["reproduce", "--dataset", "ntu60", "--out", str(out), "--quiet"]
    cases = [
        ([*base, "--ntu-root", str(root)], f"no {RGB_DIR} folder"),
        (base, "--ntu-root DIR"),
        (["reproduce", "--out", str(out), "--ntu-root", str(root)], "only for --dataset ntu60"),
    ]
    for argv, says in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], (argv, err)
    # under torchrun, an ingestion not done yet is refused (it would outlast the barrier)
    (root / RGB_DIR).mkdir()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*base, "--ntu-root", str(root)]) == 2
    assert "without torchrun" in capsys.readouterr().err
