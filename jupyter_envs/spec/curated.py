"""Curated environments: ready-made specs shipped with the package, buildable by name.

``%envs build scientific`` builds one even if it was never registered; building it registers it
under the same name like any other environment.
"""

from __future__ import annotations

from ._environment import Environment

__all__ = ["get", "names"]

_CURATED: dict[str, tuple[str, tuple[str, ...]]] = {
    "minimal": (
        "Python with ipykernel only: the smallest environment a kernel can run in.",
        (),
    ),
    "scientific": (
        "Scientific Python: NumPy, SciPy, pandas, Matplotlib.",
        ("numpy", "scipy", "pandas", "matplotlib"),
    ),
    "ml-cpu": (
        "Classic machine learning on the CPU: scikit-learn, pandas, Matplotlib, joblib.",
        ("scikit-learn", "numpy", "pandas", "matplotlib", "joblib"),
    ),
}


def names() -> list[str]:
    """Names of the curated environments."""
    return sorted(_CURATED)


def get(name: str) -> Environment:
    """A fresh Environment for the curated spec ``name`` (KeyError if unknown)."""
    description, pip = _CURATED[name]
    return Environment(name, description=description, pip=pip)
