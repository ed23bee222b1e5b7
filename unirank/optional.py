"""Optional dependencies, imported when a feature first needs them, with the install hint.

Heavy or optional parts (FAISS, FastAPI, Prometheus, ONNX Runtime, Seismic) are imported
lazily through :func:`optional_import`, so ``import unirank`` stays light and a missing
package gives one line naming the feature and the command that installs it (the CLI prints
it and exits 2), never a bare ``ModuleNotFoundError``.

Example:
    >>> optional_import("json", "reading JSON", "pip install json").__name__
    'json'
    >>> optional_import("no_such_module_xyz", "the xyz index", "pip install 'unirank[xyz]'")
    Traceback (most recent call last):
    ...
    unirank.errors.MissingDependency: the xyz index needs no_such_module_xyz: pip install 'unirank[xyz]' (No module named 'no_such_module_xyz')
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependency

__all__ = ["optional_import"]


def optional_import(module: str, purpose: str, install: str) -> ModuleType:
    """Import ``module`` or raise :class:`~unirank.errors.MissingDependency`.

    Args:
        module: the module to import (``faiss``, ``onnxruntime``, ...).
        purpose: what needs it, for the message (``"dense retrieval"``).
        install: the command that installs it (``"pip install faiss-cpu"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(f"{purpose} needs {module}: {install} ({e})") from None
