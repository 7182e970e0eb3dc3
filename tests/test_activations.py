import numpy as np
import pytest

from helpers import activations, images, models


def test_activation_model_returns_named_layers_in_order(lite0):
    am = activations.activation_model(lite0, ["stem_conv", "block1a_project_conv", "top_activation"])
    out = am(models.preprocess("efficientnet_lite0", images.sample("chelsea")))
    assert list(out) == ["stem_conv", "block1a_project_conv", "top_activation"]
    assert tuple(out["stem_conv"].shape) == (1, 112, 112, 32)
    assert tuple(out["top_activation"].shape) == (1, 7, 7, 1280)


def test_activations_match_the_model(tiny):
    am = activations.activation_model(tiny, ["conv", "relu"])
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 1)).astype(np.float32)
    out = am(x)
    np.testing.assert_allclose(out["conv"][0, ..., 0], 2 * x[0, ..., 0], atol=1e-6)
    np.testing.assert_allclose(out["relu"][0, ..., 1], np.maximum(-x[0, ..., 0], 0), atol=1e-6)


def test_default_layers_are_4d_and_visible(lite0):
    names = activations.default_layers(lite0)
    assert names[0] == "stem_conv" and "top_activation" in names
    assert "avg_pool" not in names and "stem_bn" not in names


def test_grid_layout_and_gaps():
    act = np.random.default_rng(0).normal(size=(1, 5, 6, 7)).astype(np.float32)
    g = activations.activation_grid(act, images_per_row=3)
    assert g.dtype == np.uint8
    assert g.shape == (3 * 6 - 1, 3 * 7 - 1)  # 3 rows x 3 cols of 5x6 tiles, 1-px gaps
    assert (g[5, :] == 0).all() and (g[:, 6] == 0).all()


def test_constant_channels_stay_flat_never_nan():
    act = np.zeros((4, 4, 3), np.float32)
    act[..., 1] = 7.0
    g = activations.activation_grid(act, 3)
    assert (g == 0).all()


def test_grid_rejects_bad_shapes():
    with pytest.raises(ValueError):
        activations.activation_grid(np.zeros((4, 4)))


def test_plot_activations_one_figure_per_layer(tiny):
    import matplotlib.pyplot as plt

    out = activations.activation_model(tiny, ["conv", "relu"])(np.ones((1, 4, 4, 1), np.float32))
    figs = activations.plot_activations(out)
    assert len(figs) == 2 and "conv" in figs[0].axes[0].get_title()
    blank = activations.plot_activations({"zeros": np.zeros((1, 3, 3, 2))}, images_per_row=2)[0]
    assert [t.get_text() for t in blank.axes[0].texts] == ["blank", "blank"]
    assert blank.axes[1].get_ylabel().startswith("standard deviations")
    plt.close("all")
