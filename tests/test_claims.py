import numpy as np

from helpers.claims import check


def test_check_prints_tick_or_cross_and_returns_truth(capsys):
    assert check("two is more than one", np.int64(2) > 1) is True
    assert check("one is more than two", 1 > 2, detail="1 vs 2") is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["\u2714 two is more than one", "\u2718 one is more than two (1 vs 2)"]
