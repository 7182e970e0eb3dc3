"""The CAM family: one small module per method over a shared base (``_base``).

Common contract: ``method(model, images, class_index=None, layer=None)`` takes a
preprocessed batch ``(B, H, W, 3)`` and returns float32 maps ``(B, h, w)`` in
[0, 1] (ReLU, then divided by ``max + eps``), computed from pre-softmax scores
in one compiled function per (model, layer, method). With ``return_class=True``
they return ``(maps, classes)``: the class index each map explains.
"""

from ._base import normalize, upsample
from .cam import cam
from .grad_cam import grad_cam
from .grad_cam_plus_plus import grad_cam_plus_plus
from .layer_cam import layer_cam
from .score_cam import score_cam

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
    "normalize",
    "score_cam",
    "upsample",
]
