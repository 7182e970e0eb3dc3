"""Train a classifier with global average pooling, the architecture CAM needs.

Zhou et al. (CVPR 2016, Sec. 2) replace the fully connected layers after the
last convolution with global average pooling and one dense layer: then every
class score is a weighted sum of pooled feature maps, and the same weights
applied to the unpooled maps give the class activation map.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import models
from ._files import atomic_path, write_text
from ._quiet import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
BACKBONES = ("efficientnet_lite0", "resnet50")


def _trunk(backbone: str, input_size: int):
    if backbone == "efficientnet_lite0":
        trunk = models.efficientnet_lite0(include_top=False, input_shape=(input_size, input_size, 3))
        weights = models.cached_lite0_weights()
        for name, arrays in weights.items():
            if name != "logits":
                trunk.get_layer(name).set_weights(arrays)
        return trunk
    if backbone == "resnet50":
        try:
            return keras.applications.ResNet50(
                include_top=False, weights="imagenet", input_shape=(input_size, input_size, 3)
            )
        except Exception as exc:  # noqa: BLE001 - any download failure
            raise models.WeightsUnavailableError(
                f"could not download ResNet50's ImageNet weights ({type(exc).__name__}). This needs "
                "internet access; offline, use backbone='efficientnet_lite0'."
            ) from None
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")


def build_cam_model(
    backbone: str = "efficientnet_lite0",
    num_classes: int = 8,
    input_size: int = 224,
    feature_layer: str | None = None,
    dropout: float = 0.2,
):
    """Backbone layers -> global average pooling -> dense logits (-> softmax), one flat graph.

    The graph is flat (the backbone's layers, not a nested model), so CAM and
    Grad-CAM can reach every layer by name.

    Args:
        backbone: ``"efficientnet_lite0"`` (embedded ImageNet weights) or
            ``"resnet50"`` (keras.applications; downloads its weights).
        num_classes: classes of the new dense layer.
        input_size: side of the square input.
        feature_layer: cut the backbone here (None: its last layer). An earlier
            layer gives higher-resolution maps, e.g. ``"block6a_expand_activation"``
            (14x14 at 224 px instead of 7x7).
        dropout: dropout rate before the dense layer (training only).

    Returns:
        A functional model whose layers end ``... features, "gap", "dropout",
        "logits", "predictions"``; ``model.get_layer("logits")`` holds the CAM weights.
    """
    trunk = _trunk(backbone, input_size)
    feats = trunk.get_layer(feature_layer).output if feature_layer else trunk.output
    x = keras.layers.GlobalAveragePooling2D(name="gap")(feats)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(num_classes, name="logits")(x)
    out = keras.layers.Activation("softmax", name="predictions", dtype="float32")(x)
    return keras.Model(trunk.input, out, name=f"cam_{backbone}")


def resized_uint8(image, input_size: int):
    """Resize (antialiased) to ``input_size`` square and round back to uint8 — what the pipelines cache."""
    img = tf.image.resize(tf.cast(image, tf.float32), (input_size, input_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def make_pipeline(
    ds,
    backbone: str,
    input_size: int,
    batch_size: int = 32,
    training: bool = False,
    seed: int = 0,
    with_boxes: bool = False,
):
    """TFDS examples -> ``(normalised image, label)`` batches: decode, resize, cache, shuffle, prefetch.

    With ``with_boxes`` the batches are ``(image, bbox, label)`` (for evaluation; no augmentation).
    """
    if training and with_boxes:
        raise ValueError("boxes are for evaluation: the training pipeline flips images without their boxes")
    keys = ("bbox", "label") if with_boxes else ("label",)
    ds = ds.map(
        lambda ex: (resized_uint8(ex["image"], input_size), *(ex[k] for k in keys)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    ds = ds.cache()  # uint8 after resizing: a quarter of the memory of float32
    ds = ds.map(
        lambda x, *rest: (models.normalize_input(backbone, tf.cast(x, tf.float32)), *rest),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if training:
        ds = ds.shuffle(2048, seed=seed, reshuffle_each_iteration=True).enumerate()

        # stateless flips keyed by position: reproducible even with parallel map
        def flip(i, xy):
            key = tf.stack([seed, tf.cast(i, tf.int32)])
            return tf.image.stateless_random_flip_left_right(xy[0], key), xy[1]

        ds = ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _set_trainable(model, from_layer: str | None):
    """Freeze everything before ``from_layer`` (None: freeze the whole backbone); BN stays frozen."""
    names = [lay.name for lay in model.layers]
    start = names.index(from_layer) if from_layer else names.index("gap")
    for i, lay in enumerate(model.layers):
        lay.trainable = i >= start and not isinstance(lay, keras.layers.BatchNormalization)


class _EpochLine(keras.callbacks.Callback):
    def __init__(self, stage: str, epochs: int):
        super().__init__()
        self.stage, self.epochs = stage, epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        print(
            f"[{self.stage}] epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', 0):.3f} "
            f"acc {logs.get('accuracy', 0):.3f} | val loss {logs.get('val_loss', 0):.3f} "
            f"val acc {logs.get('val_accuracy', 0):.3f}",
            flush=True,
        )


def split_at(model, first_layer: str):
    """``(lower, upper)``: ``model`` cut just before ``first_layer``, or None where the cut is not clean.

    ``lower`` maps the image to the input of ``first_layer``; ``upper`` maps that tensor to the model's
    output, sharing the model's layers (training ``upper`` trains ``model``). The cut is clean when that
    one tensor is all the layers from ``first_layer`` on need (no skip connection crosses it), as at
    EfficientNet's ``block4a_expand_conv`` (fed by ``block3b_add`` only) and at ``gap``.
    """
    inputs = model.get_layer(first_layer).input
    if isinstance(inputs, (list, tuple)):  # an Add or Concatenate: more than one tensor crosses
        return None
    try:
        upper = keras.Model(inputs, model.output, name=f"{model.name}_from_{first_layer}")
    except ValueError:  # Keras: "Output ... is not connected to inputs": a skip connection crosses the cut
        return None
    return keras.Model(model.input, inputs, name=f"{model.name}_to_{first_layer}"), upper


class _Cached(keras.utils.PyDataset):
    """Batches of cached tensors: ``x[flip, i]`` (flip 0: the image, 1: its mirror) as float32, with ``y[i]``."""

    def __init__(self, x, y, order, flip, batch_size: int):
        super().__init__()
        self.x, self.y, self.order, self.flip, self.batch_size = x, y, order, flip, batch_size

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, i):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        idx = self.order[sl]
        return self.x[self.flip[sl], idx].astype(np.float32), self.y[idx]


def epoch_plan(n: int, seed: int, stage: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, flip)`` of one epoch over ``n`` cached images: a permutation, a 0/1 mirror flag per position.

    Seeded by ``(seed, stage, epoch)``: a rerun draws the same epochs, each epoch its own.
    """
    rng = np.random.default_rng([seed, stage, epoch])
    return rng.permutation(n), rng.integers(0, 2, n)


def cache_activations(lower, pooled, pipe, flips: bool, store: bool = True, store_dtype=np.float16):
    """One pass over ``pipe`` (``(image, label)`` batches, not shuffled): the lower part's outputs and pooled features.

    Args:
        lower: image -> the tensor cached for stage 2 (None: no stage-2 cache; ``pooled`` then reads images).
        pooled: ``lower``'s output (or the image) -> the globally pooled features the head reads.
        pipe: the batches.
        flips: also the horizontally mirrored images (the training augmentation), as index 1 of the first axis.
        store: keep ``lower``'s outputs (else only the pooled features).
        store_dtype: the stored activations' dtype (float16: half the memory; the pooled features are computed
            from the float32 activations before rounding, so stage 1 does not depend on it).

    Returns:
        ``(activations or None, pooled features, labels)``; the first two have a leading axis of 2 with
        ``flips`` (image, mirror), else of 1.
    """
    acts, feats, labels = [], [], []
    for x, y in pipe:
        views = [x, tf.reverse(x, axis=[2])] if flips else [x]  # reverse along width: the left-right mirror
        batch = tf.concat(views, axis=0)
        a = lower(batch, training=False) if lower is not None else batch
        f = pooled(a, training=False)
        k = len(views)
        feats.append(np.stack(np.split(np.asarray(f), k)))
        if lower is not None and store:
            acts.append(np.stack(np.split(np.asarray(a).astype(store_dtype), k)))
        labels.append(np.asarray(y))
    acts_out = np.concatenate(acts, axis=1) if acts else None
    return acts_out, np.concatenate(feats, axis=1), np.concatenate(labels)


def _dataset_version(dataset: str) -> str:
    """The TFDS builder's version of ``dataset`` (its class attribute: no data read)."""
    import tensorflow_datasets as tfds

    from . import datasets  # noqa: F401 - registers the course's builders

    return str(tfds.builder_cls(dataset.split("/")[0]).VERSION)


# Bump when a change to the training code changes the weights it produces: a checkpoint whose settings
# carry another version is retrained, never reused. 2: stages trained on cached activations (shuffled
# permutations, seeded per epoch) instead of full passes through a shuffle buffer.
TRAINING_CODE_VERSION = 2


def train_cam_model(
    dataset: str = "toy_cars",
    backbone: str = "efficientnet_lite0",
    input_size: int = 224,
    feature_layer: str | None = "block6a_expand_activation",
    head_epochs: int = 2,
    fine_tune_epochs: int = 3,
    fine_tune_from: str | None = "block4a_expand_conv",
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    checkpoint: str | Path | None = None,
    reuse: bool = True,
    seed: int = 0,
    data_dir=None,
    manual_dir=None,
):
    """Train (or reload) a CAM model on a localisation data set.

    Stage 1 trains the new dense layer on the frozen backbone; stage 2 (if
    ``fine_tune_epochs``) also trains the backbone from ``fine_tune_from`` on at a
    10x lower learning rate. BatchNormalization layers stay frozen and the backbone
    has no dropout, so the frozen part is a fixed function of the image: it runs
    once. One pass over the training images and their mirror images (the
    augmentation) and over the validation images stores the input of
    ``fine_tune_from`` (float16) and the pooled features; stage 1 trains the head
    on the pooled features, stage 2 the upper part of the network on the stored
    tensors (:func:`split_at`), each epoch a seeded permutation with a mirror
    choice per image (:func:`epoch_plan`). Where the cut is not clean (a skip
    connection crosses it), stage 2 runs full passes over the images instead.
    The model is built inside ``tf.distribute.get_strategy()``, so a
    ``MirroredStrategy`` scope spreads it over several GPUs unchanged.

    Args:
        dataset: ``"toy_cars"`` (or ``"toy_cars/small"``) or ``"stanford_cars"``.
        backbone: ``"efficientnet_lite0"`` or ``"resnet50"`` (see :func:`build_cam_model`).
        input_size: side of the square input.
        feature_layer: where the backbone is cut (see :func:`build_cam_model`).
        head_epochs: epochs of stage 1.
        fine_tune_epochs: epochs of stage 2 (0 skips it).
        fine_tune_from: first backbone layer trained in stage 2.
        batch_size: images per step.
        learning_rate: stage 1 learning rate (Adam).
        checkpoint: ``.keras`` path; default ``data/checkpoints/<dataset>_<backbone>.keras``.
            When both stages run, the model after stage 1 is saved too, at
            :func:`head_checkpoint` of this path, with the settings of a head-only
            training (``fine_tune_epochs=0``): a later head-only call pointed at it
            reuses it instead of training the same head again.
        reuse: reload the checkpoint when it exists and its settings (these arguments, the
            data set's version and :data:`TRAINING_CODE_VERSION`) are the same; otherwise train.
        seed: seeds shuffling, augmentation and the dense layer's initialisation.
        data_dir: where TFDS data lives (see :func:`helpers.datasets.load`).
        manual_dir: the Stanford Cars files, for ``dataset="stanford_cars"``.

    Returns:
        ``(model, history)``; history maps ``loss``, ``accuracy``, ``val_loss``,
        ``val_accuracy`` to per-epoch lists (stages concatenated).
    """
    from . import datasets

    settings = dict(
        dataset=dataset, backbone=backbone, input_size=input_size, feature_layer=feature_layer,
        head_epochs=head_epochs, fine_tune_epochs=fine_tune_epochs, fine_tune_from=fine_tune_from,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        dataset_version=_dataset_version(dataset), training_code_version=TRAINING_CODE_VERSION,
    )  # fmt: skip
    path = Path(checkpoint) if checkpoint else default_checkpoint(dataset, backbone)
    meta = path.with_suffix(".json")
    if reuse and path.is_file() and meta.is_file():
        saved = json.loads(meta.read_text())
        if saved.get("settings") == settings:
            print(f"reusing {path.name} (trained with the same settings)")
            return keras.models.load_model(path, compile=False), saved["history"]
        print(f"{path.name} was trained with other settings: training again")

    (train, val), info = datasets.load(dataset, split=("train", "validation"), data_dir=data_dir, manual_dir=manual_dir)
    num_classes = info.features["label"].num_classes

    keras.utils.set_random_seed(seed)
    with tf.distribute.get_strategy().scope():
        model = build_cam_model(backbone, num_classes, input_size, feature_layer)
    history: dict[str, list] = {}

    # the frozen part, once: the input of fine_tune_from (stage 2) and the pooled features (stage 1)
    two_stage = fine_tune_epochs > 0 and fine_tune_from is not None
    cut = split_at(model, fine_tune_from) if two_stage else None
    pooled_from = model.get_layer(fine_tune_from).input if cut is not None else model.input
    lower, pooled = (cut[0] if cut else None), keras.Model(pooled_from, model.get_layer("gap").output)
    caches = {}
    for name, split in (("train", train), ("validation", val)):
        started = time.perf_counter()
        pipe = make_pipeline(split, backbone, input_size, batch_size)
        caches[name] = cache_activations(lower, pooled, pipe, flips=name == "train")
        kept = "" if cut is None else f", {caches[name][0].nbytes / 2**20:.0f} MiB of {fine_tune_from} inputs kept"
        print(
            f"[frozen part, once] {len(caches[name][2])} {name} images"
            + (" and their mirror images" if name == "train" else "")
            + f" in {time.perf_counter() - started:.0f} s{kept}",
            flush=True,
        )

    def fit(stage, stage_id, epochs, lr, from_layer, net, x_train, x_val):
        _set_trainable(model, from_layer)
        _compile(net, lr)
        lines = _EpochLine(stage, epochs)
        y_train, y_val = caches["train"][2], caches["validation"][2]
        val_seq = _Cached(x_val, y_val, np.arange(len(y_val)), np.zeros(len(y_val), int), batch_size)
        for epoch in range(epochs):
            order, flip = epoch_plan(len(y_train), seed, stage_id, epoch)
            h = net.fit(
                _Cached(x_train, y_train, order, flip, batch_size), validation_data=val_seq,
                initial_epoch=epoch, epochs=epoch + 1, verbose=0, callbacks=[lines],
            )  # fmt: skip
            for k, v in h.history.items():
                history.setdefault(k, []).extend(float(x) for x in v)

    path.parent.mkdir(parents=True, exist_ok=True)
    if head_epochs > 0:
        head = split_at(model, "dropout")[1]  # pooled features -> dropout -> dense -> softmax
        fit("head", 1, head_epochs, learning_rate, None, head, caches["train"][1], caches["validation"][1])
    if head_epochs > 0 and two_stage:  # stage 1 alone is the frozen-backbone model: keep it
        _save(model, head_checkpoint(path), {**settings, "fine_tune_epochs": 0}, history)
    if two_stage and cut is not None:
        fit("fine-tune", 2, fine_tune_epochs, learning_rate / 10, fine_tune_from, cut[1],
            caches["train"][0], caches["validation"][0])  # fmt: skip
    elif two_stage:  # no clean cut: full passes over the images
        del caches
        _fit_images(model, history, train, val, backbone, input_size, batch_size, seed, fine_tune_epochs,
                    learning_rate / 10, fine_tune_from)  # fmt: skip
    _save(model, path, settings, history)
    print(f"saved {path}")
    return keras.models.load_model(path, compile=False), history


def _compile(net, lr) -> None:
    """Adam at ``lr``, sparse cross-entropy on the softmax output, accuracy; inside the distribution strategy."""
    with tf.distribute.get_strategy().scope():
        net.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )


def _fit_images(model, history, train, val, backbone, input_size, batch_size, seed, epochs, lr, from_layer):
    """Stage 2 by full passes over the images (where :func:`split_at` finds no clean cut)."""
    _set_trainable(model, from_layer)
    _compile(model, lr)
    train_ds = make_pipeline(train, backbone, input_size, batch_size, training=True, seed=seed)
    val_ds = make_pipeline(val, backbone, input_size, batch_size)
    lines = _EpochLine("fine-tune", epochs)
    h = model.fit(train_ds, validation_data=val_ds, epochs=epochs, shuffle=False, verbose=0, callbacks=[lines])
    for k, v in h.history.items():
        history.setdefault(k, []).extend(float(x) for x in v)


def default_checkpoint(dataset: str, backbone: str) -> Path:
    """Where :func:`train_cam_model` keeps a model when no ``checkpoint`` is given."""
    return CHECKPOINT_DIR / f"{dataset.replace('/', '_')}_{backbone}.keras"


def head_checkpoint(checkpoint: str | Path) -> Path:
    """Where :func:`train_cam_model` keeps the stage-1 (frozen backbone) model of a two-stage training."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}_head{checkpoint.suffix}")


def _save(model, path: Path, settings: dict, history: dict) -> None:
    """Save a model (all layers marked trainable, as built) and its settings and history beside it.

    Both files are written atomically (:mod:`helpers._files`): an interrupted save leaves the previous ones.
    """
    flags = [lay.trainable for lay in model.layers]
    for lay in model.layers:
        lay.trainable = True
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
    finally:
        for lay, flag in zip(model.layers, flags):
            lay.trainable = flag
    write_text(path.with_suffix(".json"), json.dumps({"settings": settings, "history": history}))


def predict_classes(model, ds, backbone: str, input_size: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) labels over a TFDS split."""
    pipe = make_pipeline(ds, backbone, input_size, batch_size)
    pred, true = [], []
    for x, y in pipe:
        pred.append(np.argmax(model(x, training=False), axis=-1))
        true.append(y.numpy())
    return np.concatenate(pred), np.concatenate(true)
