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


# Conda ones: (description, channels, conda packages). Channel names go through the conda
# builder's channel alias (JUPYTER_ENVS_CONDA_CHANNEL_ALIAS), so a mirror serves them too.
_CURATED_CONDA: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "conda-python": (
        "Python and pip from conda-forge, built by the conda builder: the base to add conda "
        "packages to.",
        ("conda-forge",),
        ("python=3.11", "pip"),
    ),
    "conda-geo": (
        "Geospatial Python from conda-forge (GDAL, GeoPandas, Rasterio: compiled libraries that "
        "pip wheels do not always cover).",
        ("conda-forge",),
        ("python=3.11", "gdal", "geopandas", "rasterio", "pip"),
    ),
}


def names() -> list[str]:
    """Names of the curated environments."""
    return sorted([*_CURATED, *_CURATED_CONDA])


def get(name: str) -> Environment:
    """A fresh Environment for the curated spec ``name`` (KeyError if unknown)."""
    if name in _CURATED_CONDA:
        from ._conda import CondaDependencies

        description, channels, packages = _CURATED_CONDA[name]
        conda = CondaDependencies.create(conda_packages=packages, channels=channels)
        # backend named: a spec of python and pip alone would otherwise be built as a venv.
        return Environment(name, description=description, conda_dependencies=conda, backend="conda")
    description, pip = _CURATED[name]
    return Environment(name, description=description, pip=pip)
