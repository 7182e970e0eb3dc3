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
    monkeypatch.setenv("HELPERS_TRACEBACK", "1")  # the AssertionError fails the test instead of becoming one line


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
    assert "--class 'crane'" in err  # the message names the option it refuses


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


# --------------------------------------------------------------------------- bounds, checked before any slow work
@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if localize gets as far as training: its arguments must be checked first."""
    from helpers import training

    def train(*args, **kwargs):
        raise AssertionError("the model was trained before the error was found")

    monkeypatch.setattr(training, "train_cam_model", train)
    monkeypatch.setenv("HELPERS_TRACEBACK", "1")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["localize", "--trust-subset=-3"], "argument --trust-subset: must be an integer >= 0, got '-3'"),
        (["localize", "--faithfulness-subset", "-1"], "argument --faithfulness-subset: must be an integer >= 0"),
        (["localize", "--trust-subset", "many"], "argument --trust-subset: must be an integer"),
        (["localize", "--dataset", "imagenet"], "--dataset 'imagenet' is not one of"),
        (["localize", "--dataset", "stanford_cars", "--manual-dir", "/no/such/dir"], "--manual-dir /no/such/dir"),
    ],
)
def test_localize_checks_its_arguments_before_training(argv, message, capsys, no_training):
    assert main(argv) == 2
    assert message in _one_line_error(capsys)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--size", "5000", "argument --size: must be an integer from 8 to 512, got '5000'"),
        ("--size", "4", "argument --size: must be an integer from 8 to 512"),
        ("--steps", "1000000", "argument --steps: must be an integer from 1 to 4096"),
        ("--steps", "0", "argument --steps: must be an integer from 1 to 4096"),
        ("--seed", "-1", "argument --seed: must be an integer >= 0"),
    ],
)
def test_visualize_bounds_size_and_steps_before_loading_the_model(option, value, message, tmp_path, capsys, no_model):
    argv = ["visualize", "--class", "tabby", option, value, "--out", str(tmp_path / "v.png")]
    assert main(argv) == 2
    assert message in _one_line_error(capsys)


def test_help_states_the_bounds(capsys):
    assert main(["visualize", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "8 to 512" in text and "1 to 4096" in text


# --------------------------------------------------------------------------- no traceback, ever
def _raising(exc):
    def command(args):
        raise exc

    return command


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    import helpers.__main__ as cli

    monkeypatch.setattr(cli, "predict", _raising(KeyboardInterrupt()))
    assert main(["predict", "coffee"]) == 130
    assert "interrupted" in _one_line_error(capsys)


def test_tensorflow_errors_are_one_line(monkeypatch, capsys):
    import tensorflow as tf

    import helpers.__main__ as cli

    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[1,512,512,1280]\nmore")
    monkeypatch.setattr(cli, "visualize", _raising(oom))
    assert main(["visualize", "--class", "tabby", "--out", "v.png"]) == 1
    err = _one_line_error(capsys)
    assert "ResourceExhaustedError" in err and "out of memory" in err and "shape[1,512,512,1280]" in err
    monkeypatch.setattr(cli, "predict", _raising(tf.errors.InternalError(None, None, "cuDNN failed\ndetails")))
    assert main(["predict", "coffee"]) == 1
    assert "TensorFlow InternalError: cuDNN failed" in _one_line_error(capsys)


def test_an_unexpected_error_is_one_line_and_the_traceback_is_opt_in(monkeypatch, capsys):
    import helpers.__main__ as cli

    monkeypatch.setattr(cli, "predict", _raising(RuntimeError("boom\nsecond line")))
    assert main(["predict", "coffee"]) == 1
    assert "RuntimeError: boom" in _one_line_error(capsys)
    monkeypatch.setenv("HELPERS_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["predict", "coffee"])
