"""Score-CAM.

Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu. "Score-CAM: Score-Weighted
Visual Explanations for Convolutional Neural Networks." CVPR Workshops 2020.
"""

from __future__ import annotations

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
):
    """Score-CAM: each channel weighted by the class score of the input it masks.

    Each feature map ``A_k`` is upsampled to the input size and min-max scaled
    to [0, 1] to form a mask ``H_k``; the weight of channel ``k`` is the
    pre-softmax class score of ``x * H_k``, and the weights are softmax-normalised
    over channels (Wang et al., 2020, Eqs. 5-8). No gradients are used.

    Args:
        model: any Keras 3 model (nested sub-models included).
        images: preprocessed batch ``(B, H, W, 3)``.
        class_index: None (top-1 per image), an int, or one int per image.
        layer: name or layer; None is the last layer with a spatial output.
        return_class: also return the class index each map explains.
        batch_size: masked images per forward pass (channels are scored in batches
            inside one compiled loop).
        max_channels: score only the ``max_channels`` channels with the highest mean
            activation per image (the others get weight 0); None scores them all.

    Returns:
        float32 ``(B, h, w)`` in [0, 1].
    """
    method = f"score_cam/{batch_size}/{max_channels}"

    def build(taps, lay):
        channels = int(lay.output.shape[-1])
        k = channels if max_channels is None else min(int(max_channels), channels)

        def one_image(args):
            x, feats, cls = args  # (H, W, 3), (h, w, C), ()
            size = tf.shape(x)[:2]
            order = tf.math.top_k(tf.reduce_mean(feats, axis=(0, 1)), k=k).indices
            chosen = tf.gather(feats, order, axis=-1)  # (h, w, k)
            masks = tf.image.resize(tf.transpose(chosen, (2, 0, 1))[..., None], size)  # (k, H, W, 1)
            lo = tf.reduce_min(masks, axis=(1, 2, 3), keepdims=True)
            hi = tf.reduce_max(masks, axis=(1, 2, 3), keepdims=True)
            masks = (masks - lo) / (hi - lo + _base.EPS)
            n_chunks = (k + batch_size - 1) // batch_size

            def body(i, acc):
                m = masks[i * batch_size : (i + 1) * batch_size]
                _, logits = taps(x[None] * m, training=False)
                return i + 1, acc.write(i, tf.cast(logits, tf.float32)[:, cls])

            acc = tf.TensorArray(tf.float32, size=n_chunks, infer_shape=False)
            _, acc = tf.while_loop(lambda i, _: i < n_chunks, body, (0, acc))
            weights = tf.nn.softmax(acc.concat())  # (k,)
            return tf.reduce_sum(chosen * weights, axis=-1)

        def fn(images, class_index):
            feats, logits = taps(images, training=False)
            _, idx = _base.pick_scores(logits, class_index)
            maps = tf.map_fn(
                one_image,
                (images, tf.cast(feats, tf.float32), idx),
                fn_output_signature=tf.TensorSpec([None, None], tf.float32),
            )
            return _base.normalize(maps), idx

        return fn

    return _base.run(model, images, class_index, layer, method, build, return_class)
