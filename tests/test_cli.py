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


def test_localize_trains_then_prints_a_json_last_line(tmp_path, monkeypatch, capsys):
    from helpers import datasets, training

    monkeypatch.setattr(datasets, "DATA_DIR", tmp_path / "tfds")
    monkeypatch.setattr(training, "CHECKPOINT_DIR", tmp_path / "ck")
    assert main(["localize", "--dataset", "toy_cars/tiny", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    table = json.loads(last)["methods"]
    assert {"CAM", "Grad-CAM++", "centre box"} <= set(table)
    assert set(table["CAM"]) == {"max_box_acc", "max_box_acc_v2", "mean_iou", "tau"}
    assert (tmp_path / "ck" / "toy_cars_tiny_efficientnet_lite0.keras").is_file()


def test_localize_without_stanford_files_says_what_is_missing(tmp_path, capsys):
    assert main(["localize", "--dataset", "stanford_cars", "--manual-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cars_train.tgz" in err and str(tmp_path) in err
