"""Class Activation Mapping (CAM).

Zhou, Khosla, Lapedriza, Oliva, Torralba. "Learning Deep Features for
Discriminative Localization." CVPR 2016.
"""

from __future__ import annotations

from .. import _core
from ..graph import class_head, find_layer
from . import _base
from ._base import tf


def cam(model, images, class_index=None, layer=None, return_class=False, *, output=None):
    """Class activation maps: the class's dense weights times the feature maps.

    ``M_c(x, y) = sum_k w_k^c A_k(x, y)`` where ``A`` are the maps feeding global
    average pooling and ``w^c`` the dense weights of class ``c`` (Zhou et al.,
    2016, Eq. 2). Then ReLU and division by ``max + eps``.

    Args:
        model: a model whose output is ``GlobalAveragePooling2D -> Dense``
            (softmax optional; ``Dropout`` or other inference identities may sit
            between the pooling and the dense layer).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, an ImageNet class name
            (1000-class models), or one of those per image.
        layer: the layer whose output feeds the pooling; None finds it. Layers
            linked to the pooling only by inference identities (``Dropout``,
            ``Identity``, ``Activation('linear')``) have the same output and are
            accepted too; any other layer is an error (use ``grad_cam`` there).
        return_class: also return the class index each map explains.
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Returns:
        float32 ``(B, h, w)`` in [0, 1] (and int32 ``(B,)`` classes with ``return_class``).

    Raises:
        ValueError: the model does not end in ``GAP -> Dense``, or ``layer`` is
            not the one feeding the pooling (the message names it).
    """
    dense, feeders = class_head(model, output)
    if layer is None:
        layer = feeders[0]
    chosen = find_layer(model, layer)
    if not any(chosen is f for f in feeders):
        raise ValueError(
            f"CAM needs the layer whose output feeds global average pooling, {feeders[0].name!r}; "
            f"{chosen.name!r} is not it (CAM weights are only defined there; use grad_cam for other layers)"
        )
    kernel = dense.kernel

    def build(taps, _layer):
        def fn(images, class_index):
            feats, logits = taps(images, training=False)
            _, idx = _core.pick_scores(logits, class_index)
            w = tf.transpose(tf.gather(tf.cast(kernel, tf.float32), idx, axis=1))  # (B, C)
            return _base.relu_max_scale(_base.weighted_sum(tf.cast(feats, tf.float32), w)), idx

        return fn

    return _base.run(model, images, class_index, chosen, "cam", build, return_class, output=output)
