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
