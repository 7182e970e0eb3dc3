"""Class Activation Mapping (CAM).

Zhou, Khosla, Lapedriza, Oliva, Torralba. "Learning Deep Features for
Discriminative Localization." CVPR 2016.
"""

from __future__ import annotations

import keras

from ..graph import iter_layers
from . import _base
from ._base import tf


def _class_weights(model):
    """The ``(C, classes)`` kernel of the dense layer that follows global average pooling."""
    dense = [lay for lay in iter_layers(model) if isinstance(lay, keras.layers.Dense)]
    gap = [lay for lay in iter_layers(model) if isinstance(lay, keras.layers.GlobalAveragePooling2D)]
    if not dense or not gap:
        raise ValueError(
            "CAM needs a model that ends in global average pooling + one dense layer "
            f"(model {model.name!r} has {len(gap)} GAP and {len(dense)} dense layers); "
            "use grad_cam for other architectures"
        )
    return dense[-1].kernel, gap[-1]


def cam(model, images, class_index=None, layer=None, return_class=False):
    """Class activation maps: the class's dense weights times the feature maps.

    ``M_c(x, y) = sum_k w_k^c A_k(x, y)`` where ``A`` are the maps feeding global
    average pooling and ``w^c`` the dense weights of class ``c`` (Zhou et al.,
    2016, Eq. 2). Then ReLU and division by ``max + eps``.

    Args:
        model: a model ending in ``GlobalAveragePooling2D -> Dense`` (softmax optional).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        layer: the layer feeding the pooling; None finds it (the last spatial layer).
        return_class: also return the class index each map explains.

    Returns:
        float32 ``(B, h, w)`` in [0, 1] (and int32 ``(B,)`` classes with ``return_class``).
    """
    kernel, _gap = _class_weights(model)

    def build(taps, lay):
        channels = int(lay.output.shape[-1])
        if channels != int(kernel.shape[0]):
            raise ValueError(
                f"CAM needs the layer that feeds global average pooling: {lay.name!r} has "
                f"{channels} channels, the dense layer expects {int(kernel.shape[0])}"
            )

        def fn(images, class_index):
            feats, logits = taps(images, training=False)
            _, idx = _base.pick_scores(logits, class_index)
            w = tf.gather(tf.cast(kernel, tf.float32), idx, axis=1)  # (C, B)
            maps = tf.einsum("bhwc,cb->bhw", tf.cast(feats, tf.float32), w)
            return _base.normalize(maps), idx

        return fn

    return _base.run(model, images, class_index, layer, "cam", build, return_class)
