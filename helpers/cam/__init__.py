"""The CAM family: one small private module per method over a shared base (``_base``).

The modules are private (``_grad_cam.py`` ...), so ``cam.grad_cam`` is always
the function, never a module it hides.

Common contract: ``method(model, images, class_index=None, layer=None,
return_class=False, *, output=None)`` takes a preprocessed batch ``(B, H, W, 3)``
and returns float32 maps ``(B, h, w)`` in [0, 1] (ReLU, then divided by
``max + eps``), computed from pre-softmax scores (wherever the softmax sits) in
one compiled function per (model, layer, method, output). With
``return_class=True`` they return ``(maps, classes)``: the class index each map
explains. ``class_index`` is None (top-1), an int, an ImageNet class name
(1000-class models) or one per image; ``output`` picks the class scores of a
model with several outputs. NaN/inf or empty batches are errors; a batch that
looks like raw 0..255 pixels gives a warning.
"""

from ._base import relu_max_scale, upsample
from ._cam import cam
from ._grad_cam import grad_cam
from ._grad_cam_plus_plus import grad_cam_plus_plus
from ._layer_cam import layer_cam
from ._score_cam import score_cam

METHODS = {
    "cam": cam,
    "gradcam": grad_cam,
    "gradcam++": grad_cam_plus_plus,
    "scorecam": score_cam,
    "layercam": layer_cam,
}

__all__ = [
    "METHODS",
    "cam",
    "grad_cam",
    "grad_cam_plus_plus",
    "layer_cam",
    "relu_max_scale",
    "score_cam",
    "upsample",
]
