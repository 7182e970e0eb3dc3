import json

from benchmarks.__main__ import main


def test_benchmark_smoke_mode_runs_and_writes_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--smoke", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["smoke"] is True
    assert "grad_cam / forward (batch 2)" in res["ratios"]
    for name in (  # notebook 07: helpers.attribution and helpers.faithfulness
        "deletion+insertion / forward (batch 64)",
        "integrated_gradients / forward+backward (batch 64)",
        "randomisation cascade per stage / grad_cam batch",
        "featureviz per channel / steps x fwd+bwd floor",  # notebook 02: helpers.featureviz
        "dataset_examples / forward pass",
        "box IoUs, CAM-like maps: reference loop / one pass",  # helpers.localization_metrics.level_boxes
        "box IoUs, noisy maps: one pass / findContours floor",
    ):
        assert name in res["ratios"]
    assert all(v > 0 for v in res["ratios"].values())
    text = capsys.readouterr().out
    assert "| ratio | value | target |" in text and "forward, batch 1" in text


def test_seed_style_references_compute_the_same_maps(lite0):
    import numpy as np

    from benchmarks.__main__ import batch_of, reference_cam, reference_grad_cam
    from helpers import cam

    x = batch_of(2)
    for ref, fast in ((reference_grad_cam, cam.grad_cam), (reference_cam, cam.cam)):
        np.testing.assert_allclose(np.stack(ref(lite0, x)), fast(lite0, x), atol=1e-4)


def test_reference_box_loop_computes_the_same_ious():
    import numpy as np

    from benchmarks.__main__ import reference_image_ious
    from helpers import localization_metrics

    rng = np.random.default_rng(1)
    maps = localization_metrics.normalize_scoremaps(rng.random((3, 7, 7)) ** 3, 64)
    gt = np.array([10, 12, 40, 50])
    for m in maps:
        want, got = (
            reference_image_ious(m, gt, localization_metrics.THRESHOLDS),
            localization_metrics._image_ious(m, gt, localization_metrics.THRESHOLDS),
        )
        np.testing.assert_array_equal(want[0], got[0])
        np.testing.assert_array_equal(want[1], got[1])
