"""Names of a package imported on first use, so importing the package stays cheap."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any], *, moved: Mapping[str, str] | None = None
) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: each name in ``exports`` (name -> module, relative to the
    package) is imported when first looked up, then kept in ``namespace`` (the package's globals).

    ``moved`` (name -> the public module that now holds it, absolute) keeps names that left the package's face
    working for a while: they resolve with a `FutureWarning` naming their new home, and `dir()` does not list them.
    """
    moved = moved or {}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module, package), name)
            namespace[name] = value  # later lookups skip __getattr__
            return value
        if name in moved:
            warnings.warn(
                f"{package}.{name} moved to {moved[name]}.{name}: import it from there "
                f"(`from {moved[name]} import {name}`); the {package}.{name} alias will be removed.",
                FutureWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(moved[name]), name)  # not cached: every use warns
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
