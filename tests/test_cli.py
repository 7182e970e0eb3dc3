import json

from helpers.__main__ import main


def test_predict_json(capsys):
    assert main(["predict", "coffee", "--json", "--top", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["name"] == "espresso" and len(out) == 2


def test_gradcam_writes_an_overlay(tmp_path, capsys):
    out = tmp_path / "cat.png"
    assert main(["gradcam", "chelsea", "--method", "layercam", "--class", "tabby", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "Egyptian cat" in text and "'tabby'" in text


def test_errors_are_one_line(capsys, tmp_path):
    assert main(["predict", str(tmp_path / "missing.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err
