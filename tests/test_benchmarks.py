import json

from benchmarks.__main__ import main


def test_benchmark_smoke_mode_runs_and_writes_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--smoke", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["smoke"] is True
    assert "grad_cam / forward (batch 2)" in res["ratios"]
    assert all(v > 0 for v in res["ratios"].values())
    text = capsys.readouterr().out
    assert "| ratio | value | target |" in text and "forward, batch 1" in text
