"""helpers: the tested library behind the course notebooks.

One module per topic; notebooks call these functions and never copy them.
"""

from ._quiet import import_tensorflow

import_tensorflow()

from . import activations, boxes, cam, filters, graph, images, models, viz  # noqa: E402

__all__ = ["activations", "boxes", "cam", "filters", "graph", "images", "models", "viz"]
__version__ = "0.1.0"
