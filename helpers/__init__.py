"""helpers: the tested library behind the course notebooks.

One module per topic; notebooks call these functions and never copy them.

``import helpers`` is light: each module is imported on first use
(``helpers.models`` or ``from helpers import models``; PEP 562), so a notebook
loads only what it uses: TensorFlow Datasets with ``helpers.datasets``, never
for the first lessons. A module is found by its file name, so a new module
needs no entry here. TensorFlow is imported quietly (see :mod:`helpers._quiet`)
before any module that is not in :data:`_WITHOUT_TENSORFLOW`.
"""

from __future__ import annotations

import importlib
import pkgutil

__version__ = "0.1.0"

#: Modules that import neither TensorFlow nor Keras when they are imported
#: (they may later, quietly): no need to load TensorFlow first.
_WITHOUT_TENSORFLOW = frozenset(
    {"boxes", "claims", "images", "localization_metrics", "models", "stats", "torchfile", "viz"}
)


def _module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _WITHOUT_TENSORFLOW and name in _module_names():
        from ._quiet import import_tensorflow

        import_tensorflow()  # quietly, before a module that imports keras at its top
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the module exists but needs a package that is missing
        raise AttributeError(f"module {__name__!r} has no attribute or module {name!r}") from None
    return module  # the import system has also set it as an attribute of the package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_module_names()))


__all__ = _module_names()
