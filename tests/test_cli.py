import json
import os

import pytest

from helpers import cam, models
from helpers.__main__ import main


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command gets as far as loading a model: errors must come first."""

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the error was found")

    monkeypatch.setattr(models, "load", load)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


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


def test_gradcam_scorecam_passes_max_channels(tmp_path, capsys, monkeypatch):
    calls = []
    real = cam.METHODS["scorecam"]
    monkeypatch.setitem(cam.METHODS, "scorecam", lambda *a, **k: calls.append(k) or real(*a, **k))
    out = tmp_path / "new" / "cat.png"
    assert main(["gradcam", "chelsea", "--method", "scorecam", "--max-channels", "4", "--out", str(out)]) == 0
    assert calls[0]["max_channels"] == 4 and out.read_bytes()[:4] == b"\x89PNG"


def test_a_missing_file_is_a_one_line_error(capsys, tmp_path):
    assert main(["predict", str(tmp_path / "missing.jpg")]) == 2
    assert "no such file" in _one_line_error(capsys)


@pytest.mark.parametrize("top", ["0", "-1", "1001", "two"])
def test_top_must_be_from_1_to_1000(top, capsys, no_model):
    assert main(["predict", "coffee", "--top", top]) == 2
    assert "argument --top: must be an integer from 1 to 1000" in _one_line_error(capsys)


def test_usage_errors_are_one_line(capsys, no_model):
    assert main(["gradcam", "chelsea"]) == 2
    assert "--out" in _one_line_error(capsys)


def test_a_misspelt_sample_gets_the_close_names(capsys, no_model):
    assert main(["predict", "chelsa"]) == 2
    assert "did you mean 'chelsea'" in _one_line_error(capsys)


def _file(path):
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(
    "make_out, message",
    [
        (lambda d: d, "is a folder"),
        (lambda d: _file(d / "notes.txt") / "new" / "cat.png", "is a file, not a folder"),
        (lambda d: d / "new" / "sub" / "cat.gif", "must end in .png or .jpg"),
    ],
)
def test_out_is_checked_before_the_work_and_leaves_no_folder(tmp_path, capsys, no_model, make_out, message):
    out = make_out(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["gradcam", "chelsea", "--out", str(out)]) == 2
    assert message in _one_line_error(capsys)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_unwritable_out_folder_is_refused_first(tmp_path, capsys, no_model):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["gradcam", "chelsea", "--out", str(locked / "cat.png")]) == 2
    assert "permission denied" in _one_line_error(capsys)


def test_an_ambiguous_class_lists_the_candidates(tmp_path, capsys, no_model):
    assert main(["gradcam", "chelsea", "--class", "crane", "--out", str(tmp_path / "x.png")]) == 2
    err = _one_line_error(capsys)
    assert "134 (crane bird)" in err and "517 (construction crane)" in err and "pass the index" in err


def test_methods_come_from_helpers_cam(tmp_path, capsys, no_model, monkeypatch):
    assert main(["gradcam", "chelsea", "--method", "rise", "--out", str(tmp_path / "x.png")]) == 2
    assert ", ".join(cam.METHODS) in _one_line_error(capsys)
    monkeypatch.setitem(cam.METHODS, "rise", None)
    with pytest.raises(AssertionError, match="model was loaded"):  # accepted: it got as far as the model
        main(["gradcam", "chelsea", "--method", "rise", "--out", str(tmp_path / "x.png")])


def test_max_channels_is_for_scorecam_only(tmp_path, capsys, no_model):
    assert main(["gradcam", "chelsea", "--max-channels", "4", "--out", str(tmp_path / "x.png")]) == 2
    assert "scorecam only" in _one_line_error(capsys)


# the localize command's JSON report is tested in test_training.py, on the suite's one trained model


def test_localize_without_stanford_files_says_what_is_missing(tmp_path, capsys):
    assert main(["localize", "--dataset", "stanford_cars", "--manual-dir", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert "cars_train.tgz" in err and str(tmp_path) in err


def test_bad_options_fail_before_tensorflow_is_imported(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from helpers.__main__ import main; "
        f"rc = main(['gradcam', 'chelsea', '--class', 'crane', '--out', {str(tmp_path / 'x.png')!r}]); "
        "print(rc, 'tensorflow' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["2", "False"], run.stderr[-1000:]


@pytest.mark.slow
def test_trust_prints_the_randomisation_table(capsys):
    assert main(["trust", "chelsea", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["stages"][0] == "logits" and out["stages"][-1] == "stem"
    rho = out["spearman"]
    assert set(rho) == {"gradcam", "saliency", "guided_backprop", "guided_gradcam"}
    # Adebayo et al.'s finding, on this model: guided backprop survives randomised top blocks, Grad-CAM does not
    assert rho["guided_backprop"]["block6a"] > 0.7 > 0.5 > rho["gradcam"]["block6a"]


def test_trust_names_a_misspelt_sample(capsys, no_model):
    assert main(["trust", "chelsee"]) == 2
    assert "chelsea" in capsys.readouterr().err
