"""helpers: the tested library behind the course notebooks.

One module per topic; notebooks call these functions and never copy them.
"""

from ._quiet import import_tensorflow

import_tensorflow()

from . import (  # noqa: E402
    activations,
    boxes,
    cam,
    datasets,
    filters,
    graph,
    images,
    localization,
    models,
    training,
    viz,
)

__all__ = [
    "activations",
    "boxes",
    "cam",
    "datasets",
    "filters",
    "graph",
    "images",
    "localization",
    "models",
    "training",
    "viz",
]
__version__ = "0.1.0"
