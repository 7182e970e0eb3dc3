"""Score-CAM.

Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu. "Score-CAM: Score-Weighted
Visual Explanations for Convolutional Neural Networks." CVPR Workshops 2020.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from . import _base
from ._base import tf


def score_cam(
    model,
    images,
    class_index=None,
    layer=None,
    batch_size: int = 64,
    max_channels: int | None = None,
    return_class=False,
    *,
    output=None,
):
    """Score-CAM: each channel weighted by the class score of the input it masks.

    Each feature map ``A_k`` is upsampled (bilinear) to the input size and
    min-max scaled to [0, 1] to form a mask ``H_k``; ``s_k`` is the pre-softmax
    score of the target class for ``x * H_k``; the channel weights are
    ``softmax_k(s_k)`` and the map is ``ReLU(sum_k softmax_k(s) A_k)``
    (Wang et al., 2020, Sec. 3 and Algorithm 1; the baseline score ``f(X_b)``
    cancels in the softmax over channels). No gradients are used.

    Variants where peers differ: the weights are a softmax over *channels* of the
    target logit, as in pytorch-grad-cam's ``ScoreCAM``; the authors' code and
    tf-keras-vis weight each channel by the target's softmax *probability* over
    classes instead. With ``max_channels`` only the channels of highest *mean*
    activation are scored (a constant channel gets mask 0, as in
    pytorch-grad-cam); tf-keras-vis' ``max_N`` ("Faster Score-CAM") picks the
    channels of highest *standard deviation*.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        layer: name or layer; None is the last layer with a spatial output.
        return_class: also return the class index each map explains.
        batch_size: masked images per forward pass (channels are scored in batches
            inside one compiled loop); an int >= 1.
        max_channels: score only the ``max_channels`` channels with the highest mean
            activation per image (the others get weight 0); None scores them all;
            otherwise an int >= 1.
        output: the output holding the class scores (name or index); required
            for models with several outputs.

    Returns:
        float32 ``(B, h, w)`` in [0, 1] (and int32 ``(B,)`` classes with ``return_class``).

    Raises:
        ValueError: ``batch_size`` or ``max_channels`` not a positive int.
    """
    for name, value in (("batch_size", batch_size), ("max_channels", max_channels)):
        if value is None and name == "max_channels":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"{name} must be an int >= 1" + (" or None" if name == "max_channels" else "") + f", got {value!r}"
            )
    method = f"score_cam/{int(batch_size)}/{max_channels}"

    def build(taps, lay):
        channels = int(lay.output.shape[-1])
        k = channels if max_channels is None else min(int(max_channels), channels)
        batch = int(batch_size)

        def one_image(args):
            x, feats, cls = args  # (H, W, 3), (h, w, C), ()
            size = tf.shape(x)[:2]
            order = tf.math.top_k(tf.reduce_mean(feats, axis=(0, 1)), k=k).indices
            chosen = tf.gather(feats, order, axis=-1)  # (h, w, k)
            masks = tf.image.resize(tf.transpose(chosen, (2, 0, 1))[..., None], size)  # (k, H, W, 1)
            lo = tf.reduce_min(masks, axis=(1, 2, 3), keepdims=True)
            hi = tf.reduce_max(masks, axis=(1, 2, 3), keepdims=True)
            # max(., EPS), not hi - lo + EPS: TF's graph optimiser may reassociate the sum and lose EPS
            # in float32 rounding, turning a constant channel's 0 / 0 into NaN (found by hypothesis).
            masks = (masks - lo) / tf.maximum(hi - lo, _base.EPS)
            n_chunks = (k + batch - 1) // batch

            def body(i, acc):
                m = masks[i * batch : (i + 1) * batch]
                _, logits = taps(x[None] * m, training=False)
                return i + 1, acc.write(i, tf.cast(logits, tf.float32)[:, cls])

            acc = tf.TensorArray(tf.float32, size=n_chunks, infer_shape=False)
            _, acc = tf.while_loop(lambda i, _: i < n_chunks, body, (0, acc))
            weights = tf.nn.softmax(acc.concat())  # (k,)
            return tf.reduce_sum(chosen * weights, axis=-1)

        def fn(images, class_index):
            feats, logits = taps(images, training=False)
            _, idx = _core.pick_scores(logits, class_index)
            maps = tf.map_fn(
                one_image,
                (images, tf.cast(feats, tf.float32), idx),
                fn_output_signature=tf.TensorSpec([None, None], tf.float32),
            )
            return _base.relu_max_scale(maps), idx

        return fn

    return _base.run(model, images, class_index, layer, method, build, return_class, output=output)
