"""``Environment``: the one spec object, shaped like AzureML's, Flyte's and Prefect's.

An Environment is validated as it is built and on every assignment: bad values raise
:class:`~jupyter_envs.errors.SpecError` naming the field (and the line, for text). Its
:attr:`spec_hash` covers exactly the ingredients that change the built result, so an unchanged
spec is a registry hit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from . import _text
from ._binding import WithActions
from ._conda import CondaDependencies
from ._fields import (
    apply_change,
    as_dependencies,
    check_backend,
    check_description,
    check_interruptible,
    check_registry,
    req_key,
)
from ._pep723 import read_script_metadata
from ._pylock import read_pylock
from ._requirements import (
    check_conflicts,
    parse_pip_options,
    parse_requirement,
    parse_requirements_text,
    requirement_of,
)
from ._sections import DockerSection, PythonSection, Resources
from ._validate import (
    as_string_list,
    read_spec_file,
    validate_env_vars,
    validate_image_ref,
    validate_name,
    validate_secret_names,
)

if TYPE_CHECKING:
    pass

__all__ = ["Environment"]

# Bump when the meaning of an ingredient changes, so old hashes stop matching.
_HASH_SCHEMA = 1


class Environment(WithActions):
    """A software environment: what to install, and how its kernel runs.

    ``Environment(name, python="3.11", pip=["pandas"])`` is the direct form; the
    ``from_*`` constructors read requirements.txt, environment.yml and Dockerfile files or text.
    """

    # Declared here for readers of the class (and for type checkers across modules).
    description: str
    python: PythonSection
    docker: DockerSection
    secrets: tuple[str, ...]
    resources: Resources
    interruptible: bool

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        python: str | None = None,
        pip: Iterable[str] = (),
        pip_options: Iterable[str] = (),
        pip_constraints: Iterable[str] = (),
        conda_dependencies: CondaDependencies | None = None,
        base_image: str | None = None,
        apt_packages: Iterable[str] = (),
        image: str | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Iterable[str] | None = None,
        resources: Resources | dict[str, Any] | None = None,
        depends_on: Iterable[Environment | str] = (),
        interruptible: bool = False,
        pod_template: Mapping[str, Any] | None = None,
        backend: str | None = None,
        registry: str | None = None,
    ) -> None:
        self._name = validate_name(name)
        self.description = check_description(description)
        self.python = PythonSection()
        self.python.version = python
        self.python.conda_dependencies = conda_dependencies
        self.docker = DockerSection()
        self.docker.base_image = base_image
        self.docker.apt_packages = apt_packages
        self._pip: tuple[str, ...] = ()
        self.pip_requirements = pip
        self._pip_options: tuple[str, ...] = ()
        self.pip_options = pip_options
        self._pip_constraints: tuple[str, ...] = ()
        self.pip_constraints = pip_constraints
        self._image: str | None = None
        self.image = image
        self._env_vars = validate_env_vars(env_vars)
        self.secrets = validate_secret_names(secrets)
        self.resources = Resources.coerce(resources)
        self.depends_on: tuple[str, ...] = ()
        for dep in as_dependencies(depends_on):
            self.add_dependency(dep)
        self.interruptible = check_interruptible(interruptible)
        if pod_template is not None and not isinstance(pod_template, Mapping):
            raise SpecError("must be a mapping", field="pod_template")
        self.pod_template = dict(pod_template) if pod_template is not None else None
        self._backend = check_backend(backend)
        self._registry: str | None = None
        self.registry = registry
        #: Which text format ``from_text`` chose (None when not made from text).
        self.detected_format: str | None = None
        #: Registry version this object was loaded from (None when not loaded from a registry).
        self.version: int | None = None

    # -- validated attributes --------------------------------------------------------------
    @property
    def name(self) -> str:
        """The environment name: 1-63 of ``a-z 0-9 - _ .``; never a path."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = validate_name(value)

    @property
    def pip_requirements(self) -> tuple[str, ...]:
        """PEP 508 requirements, normalised."""
        return self._pip

    @pip_requirements.setter
    def pip_requirements(self, value: Iterable[str]) -> None:
        if isinstance(value, str):
            value = [line for line in value.splitlines() if line.strip()]
        reqs = tuple(parse_requirement(r) for r in as_string_list(value, "pip"))
        check_conflicts(reqs)
        self._pip = reqs

    @property
    def pip_options(self) -> tuple[str, ...]:
        """Options for the installer: index options (``--index-url …``, ``--extra-index-url …``,
        ``--find-links …``), ``--pre``, ``--no-binary …``, ``--only-binary …``,
        ``--prefer-binary``, ``--no-index``, ``--require-hashes``, ``-e /abs/folder``."""
        return self._pip_options

    @pip_options.setter
    def pip_options(self, value: Iterable[str]) -> None:
        # Validated like options in requirements text: they are written verbatim into the
        # installer's requirements file, so "-e ." or arbitrary text must not slip in here.
        self._pip_options = parse_pip_options(value)

    @property
    def pip_constraints(self) -> tuple[str, ...]:
        """Constraints (``-c`` files' content): versions to use *if* a project is installed."""
        return self._pip_constraints

    @pip_constraints.setter
    def pip_constraints(self, value: Iterable[str]) -> None:
        items = as_string_list(value, "pip_constraints")
        self._pip_constraints = tuple(parse_requirement(r) for r in items)

    def all_pip_options(self) -> tuple[str, ...]:
        """The spec's installer options and those of its conda ``pip:`` section, deduplicated."""
        conda = self.python.conda_dependencies
        extra = conda.pip_options if conda else ()
        return (*self._pip_options, *(o for o in extra if o not in self._pip_options))

    def local_paths(self) -> tuple[str, ...]:
        """Folders and files of this machine the environment is built from (``-e`` folders,
        ``file:`` requirements): it depends on them, and they are not in the spec."""
        paths = [o.split(" ", 1)[1] for o in self.all_pip_options() if o.startswith("-e ")]
        for req in self.all_pip_requirements():
            url = requirement_of(req).url
            if url and url.startswith("file:"):
                paths.append(url)
        return tuple(paths)

    @property
    def image(self) -> str | None:
        """A prebuilt image to run the kernel in (needs a container builder)."""
        return self._image

    @image.setter
    def image(self, value: str | None) -> None:
        self._image = validate_image_ref(value, "image")

    @property
    def registry(self) -> str | None:
        """Where its image is pushed after a build (``host[:port][/path]``; None: not pushed,
        unless the server names a default). Not part of the spec hash: where an image is kept
        does not change what is built."""
        return self._registry

    @registry.setter
    def registry(self, value: str | None) -> None:
        self._registry = check_registry(value)

    @property
    def env_vars(self) -> dict[str, str]:
        """Environment variables set in the kernel (a copy; assign to change)."""
        return dict(self._env_vars)

    @env_vars.setter
    def env_vars(self, value: Mapping[str, str] | None) -> None:
        self._env_vars = validate_env_vars(value)

    # AzureML's name for the same thing.
    environment_variables = env_vars

    @property
    def kernel_env_vars(self) -> dict[str, str]:
        """What the kernel gets: the conda spec's ``variables``, then :attr:`env_vars` over them
        (a conda spec attached after construction brings its variables too)."""
        conda = self.python.conda_dependencies
        return {**(conda.variables if conda else {}), **self._env_vars}

    @property
    def backend(self) -> str:
        """The builder this spec names, else its :attr:`kind`.

        Read from the spec alone: which builder plug-ins are installed never changes it (nor,
        so, the :attr:`spec_hash`). The façade may still hand a spec of kind ``venv`` to a
        plug-in whose ``detect()`` claims it.
        """
        return self._backend or self.kind

    @backend.setter
    def backend(self, value: str | None) -> None:
        self._backend = check_backend(value)

    @property
    def backend_named(self) -> str | None:
        """The builder the spec names explicitly (``backend=``), or None."""
        return self._backend

    @property
    def kind(self) -> str:
        """What the spec describes: ``docker`` (any Docker setting or a prebuilt image),
        ``conda`` (conda packages beyond python and pip) or ``venv``."""
        if self.docker.enabled or self.image:
            return "docker"
        conda = self.python.conda_dependencies
        return "conda" if conda is not None and conda.needs_conda() else "venv"

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | Path) -> Environment:
        """Read a requirements.txt file (``-r`` includes are followed)."""
        path = Path(file_path)
        text = read_spec_file(path, "file_path")
        return cls.from_text(name, text, _text.REQUIREMENTS, base_dir=path.parent, source=str(path))

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | Path) -> Environment:
        """Read a conda environment.yml file."""
        path = Path(file_path)
        text = read_spec_file(path, "file_path")
        return cls._from_conda_text(name, text, source=str(path), base_dir=path.parent)

    #: AzureML spells it both ways.
    from_conda_specifications = from_conda_specification

    @classmethod
    def from_dockerfile(cls, name: str, dockerfile: str | Path) -> Environment:
        """Use a Dockerfile (a path, or the Dockerfile text itself) as the base of the image."""
        text = str(dockerfile)
        if "\n" not in text and Path(text).is_file():
            text = Path(text).read_text()
        elif "\n" not in text and text.strip() and not any(c.isspace() for c in text.strip()):
            # One word that is not a file is a path that does not exist, not Dockerfile text:
            # say so rather than "a Dockerfile must start with FROM".
            text = read_spec_file(Path(text), "dockerfile")
        env = cls(name)
        env.docker.base_dockerfile = text
        env.detected_format = _text.DOCKERFILE
        return env

    @classmethod
    def from_docker_image(cls, name: str, image: str) -> Environment:
        """An environment whose kernel runs in an existing image, as AzureML's
        ``from_docker_image`` (the kernel's packages are added on top of it)."""
        env = cls(name, base_image=image)
        env.detected_format = _text.DOCKERFILE
        return env

    def save_to_directory(self, path: str | Path, overwrite: bool = False) -> list[Path]:
        """Write this environment to a folder (as AzureML's ``save_to_directory``): the files
        :meth:`save` writes; :meth:`load_from_directory` reads them back. An existing folder
        that is not empty is refused unless ``overwrite``."""
        target = Path(path)
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise SpecError(
                f"{target} exists and is not empty: pass overwrite=True to write over it",
                field="path",
            )
        return self.save(target)

    @classmethod
    def load_from_directory(cls, path: str | Path) -> Environment:
        """Read a folder written by :meth:`save_to_directory` (its ``environment.json``), or,
        without one, the ``requirements.txt``, ``environment.yml`` or ``Dockerfile`` in it."""
        folder = Path(path)
        if not folder.is_dir():
            raise SpecError(f"not a folder: {folder}", field="path")
        saved = folder / "environment.json"
        if saved.is_file():
            try:
                data = json.loads(saved.read_text())
            except (OSError, ValueError) as exc:
                raise SpecError(f"cannot read {saved}: {exc}", field="path") from None
            return cls.from_dict(data)
        for file, reader in (
            ("environment.yml", cls.from_conda_specification),
            ("environment.yaml", cls.from_conda_specification),
            ("requirements.txt", cls.from_pip_requirements),
            ("Dockerfile", cls.from_dockerfile),
        ):
            if (folder / file).is_file():
                return reader(folder.resolve().name.lower() or "env", folder / file)
        raise SpecError(
            f"{folder} holds no environment.json, environment.yml, requirements.txt or Dockerfile",
            field="path",
        )

    @classmethod
    def from_text(
        cls,
        name: str,
        text: str,
        format: str | None = None,
        *,
        base_dir: str | Path | None = None,
        source: str | None = None,
    ) -> Environment:
        """Build from requirements.txt, environment.yml, Dockerfile, PEP 723 block or
        pylock.toml *text*.

        ``format`` forces one; otherwise it is detected and recorded in :attr:`detected_format`.
        Files the text names (``-r``, ``-c``, ``-e``, local paths) are read relative to
        ``base_dir`` (``%%env`` passes the notebook's folder); ``source`` names the text in
        errors.
        """
        folder = Path(base_dir) if base_dir is not None else None
        fmt = _text.normalize_format(format) if format else _text.detect_format(text)
        if fmt == _text.DOCKERFILE:
            env = cls.from_dockerfile(name, text if "\n" in text else text + "\n")
        elif fmt == _text.CONDA:
            env = cls._from_conda_text(name, text, source=source, base_dir=folder)
        elif fmt == _text.SCRIPT:
            meta = read_script_metadata(text, source or "the text")
            if meta is None:
                raise SpecError("has no '# /// script' block", field="text", source=source)
            env = cls(
                name,
                python=meta.requires_python,
                pip=meta.dependencies,
                pip_options=meta.pip_options,
                pip_constraints=meta.constraints,
            )
        elif fmt == _text.PYLOCK:
            locked = read_pylock(text, source or "pylock.toml")
            env = cls(
                name, python=locked.python, pip=locked.requirements, pip_options=locked.options
            )
        else:
            parsed = parse_requirements_text(text, source=source, base_dir=folder)
            if not parsed.requirements and not any(o.startswith("-e ") for o in parsed.options):
                raise SpecError("the spec lists no requirements", field="pip", source=source)
            env = cls(
                name,
                pip=parsed.requirements,
                pip_options=parsed.options,
                pip_constraints=parsed.constraints,
            )
        env.detected_format = fmt
        return env

    @classmethod
    def _from_conda_text(
        cls, name: str, text: str, *, source: str | None, base_dir: Path | None = None
    ) -> Environment:
        conda = CondaDependencies.from_string(text, source=source, base_dir=base_dir)
        if not conda.conda_packages and not conda.pip_packages and not conda.pip_options:
            raise SpecError(
                "the environment file lists no dependencies", field="conda", source=source
            )
        env = cls(name, conda_dependencies=conda, env_vars=conda.variables)
        env.detected_format = _text.CONDA
        return env

    # -- Flyte-style composition -------------------------------------------------------------
    def clone_with(self, name: str | None = None, **changes: Any) -> Environment:
        """Return a copy with a new name and any constructor arguments changed."""
        data = self.to_dict()
        data["name"] = name if name is not None else self.name
        clone = Environment.from_dict(data)
        for key, value in changes.items():
            apply_change(clone, key, value)
        return clone

    def add_dependency(self, env: Environment | str) -> None:
        """Record that this environment depends on another one (by name)."""
        dep = env.name if isinstance(env, Environment) else validate_name(env, "depends_on")
        if dep == self._name:
            raise SpecError("an environment cannot depend on itself", field="depends_on")
        if dep not in self.depends_on:
            self.depends_on = (*self.depends_on, dep)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; :meth:`from_dict` reads it back."""
        return {
            "name": self._name,
            "description": self.description,
            "python": self.python.to_dict(),
            "pip": list(self._pip),
            "pip_options": list(self.pip_options),
            "pip_constraints": list(self.pip_constraints),
            "docker": self.docker.to_dict(),
            "image": self.image,
            "env_vars": dict(self._env_vars),
            "secrets": list(self.secrets),
            "resources": self.resources.to_dict(),
            "depends_on": list(self.depends_on),
            "interruptible": self.interruptible,
            "pod_template": self.pod_template,
            "backend": self._backend,
            "registry": self.registry,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Environment:
        """Rebuild an Environment from :meth:`to_dict` output (unknown keys are refused)."""
        if not isinstance(data, Mapping):
            raise SpecError(f"must be a mapping, got {type(data).__name__}", field="spec")
        known = set(cls("x").to_dict())
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"unknown keys {sorted(unknown)} (known: {sorted(known)})")
        # These used to surface as KeyError / AttributeError rather than a SpecError.
        if "name" not in data:
            raise SpecError("is required", field="name")
        py = data.get("python") or {}
        docker = data.get("docker") or {}
        for key, section in (("python", py), ("docker", docker)):
            if not isinstance(section, Mapping):
                raise SpecError(
                    f"malformed spec: must be a mapping (as to_dict() writes it), got {section!r}",
                    field=key,
                )
        conda_data = py.get("conda_dependencies")
        conda = CondaDependencies.from_string(json.dumps(conda_data)) if conda_data else None
        env = cls(
            data["name"],
            description=data.get("description", ""),
            python=py.get("version"),
            pip=data.get("pip", ()),
            pip_options=data.get("pip_options", ()),
            pip_constraints=data.get("pip_constraints", ()),
            conda_dependencies=conda,
            base_image=docker.get("base_image"),
            apt_packages=docker.get("apt_packages", ()),
            image=data.get("image"),
            env_vars=data.get("env_vars"),
            secrets=data.get("secrets"),
            resources=data.get("resources"),
            depends_on=data.get("depends_on", ()),
            interruptible=data.get("interruptible", False),
            pod_template=data.get("pod_template"),
            backend=data.get("backend"),
            registry=data.get("registry"),
        )
        env.docker.base_dockerfile = docker.get("base_dockerfile")
        env.python.user_managed_dependencies = bool(py.get("user_managed_dependencies", False))
        env.python.interpreter_path = py.get("interpreter_path")
        return env

    def save(self, directory: str | Path) -> list[Path]:
        """Write environment.json and requirements.txt / environment.yml / Dockerfile as needed."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written = [target / "environment.json"]
        written[0].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        if self.pip_constraints:
            path = target / "constraints.txt"
            path.write_text("\n".join(self.pip_constraints) + "\n")
            written.append(path)
        if self._pip or self.pip_options:
            path = target / "requirements.txt"
            constraints = ["-c constraints.txt"] if self.pip_constraints else []
            path.write_text("\n".join([*self.pip_options, *constraints, *self._pip]) + "\n")
            written.append(path)
        if self.python.conda_dependencies is not None:
            written.append(self.python.conda_dependencies.save(target / "environment.yml"))
        if self.docker.base_dockerfile:
            path = target / "Dockerfile"
            path.write_text(self.docker.base_dockerfile)
            written.append(path)
        return written

    # -- hashing -----------------------------------------------------------------------------
    def all_pip_requirements(self) -> tuple[str, ...]:
        """pip requirements from the spec and from attached conda dependencies, deduplicated."""
        seen: dict[str, str] = {}
        conda = self.python.conda_dependencies
        for req in (*self._pip, *(conda.pip_packages if conda else ())):
            seen.setdefault(req_key(req), req)
        return tuple(seen.values())

    def effective_python(self) -> str | None:
        """The Python version asked for, directly or through a conda ``python=`` pin."""
        if self.python.version:
            return self.python.version
        conda = self.python.conda_dependencies
        return conda.get_python_version() if conda else None

    def ingredients(self) -> dict[str, Any]:
        """Everything that changes the built result, normalised (the input of :attr:`spec_hash`).

        Names, descriptions, Flyte scheduling hints and ``depends_on`` do not change what is
        built, so they are left out; requirement order and name spelling do not matter.
        """
        conda = self.python.conda_dependencies
        data: dict[str, Any] = {
            "schema": _HASH_SCHEMA,
            "backend": self.backend,
            "python": self.effective_python() or "",
            "pip": sorted(self.all_pip_requirements()),
            "pip_options": list(self.all_pip_options()),
            "env_vars": dict(sorted(self._env_vars.items())),
            "secrets": sorted(self.secrets),
        }
        if self.pip_constraints:  # only when there are some: older specs keep their hashes
            data["pip_constraints"] = sorted(self.pip_constraints)
        if conda is not None and conda.needs_conda():
            # A bare "pip" is implied by pip packages: to_dict() writes it, so it reads back as a
            # conda package. Counting it changed the hash of such a spec after a round trip
            # through the registry (to_dict → from_dict), and so rebuilt an unchanged spec.
            implied = {"pip"} if conda.pip_packages else set()
            data["conda"] = {
                "channels": list(conda.channels),
                "packages": sorted(p for p in conda.conda_packages if p not in implied),
            }
        if self.docker.enabled:
            data["docker"] = self.docker.to_dict()
        if self.image:
            data["image"] = self.image
        if self.python.user_managed_dependencies:
            data["user_managed"] = self.python.interpreter_path or True
        if self.resources != Resources():
            data["resources"] = self.resources.to_dict()
        return data

    @property
    def spec_hash(self) -> str:
        """sha256 (hex) over :meth:`ingredients`."""
        blob = json.dumps(self.ingredients(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def explain(self, other: Environment) -> list[str]:
        """Say which ingredients differ from ``other``: why one would rebuild and not the other."""
        mine, theirs = self.ingredients(), other.ingredients()
        out: list[str] = []
        for key in sorted(set(mine) | set(theirs)):
            a, b = mine.get(key), theirs.get(key)
            if a == b:
                continue
            if isinstance(a, list) and isinstance(b, list) and key in ("pip", "secrets"):
                added = [x for x in a if x not in b]
                removed = [x for x in b if x not in a]
                parts = [f"+{x}" for x in added] + [f"-{x}" for x in removed]
                out.append(f"{key}: " + ", ".join(parts))
            else:
                out.append(f"{key}: {b!r} -> {a!r}")
        return out

    # -- dunder ------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Environment) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        bits = [repr(self._name)]
        if self.version is not None:
            bits.append(f"version={self.version}")
        if self.python.version:
            bits.append(f"python={self.python.version!r}")
        if self._pip:
            bits.append(f"pip={list(self._pip)!r}")
        return f"Environment({', '.join(bits)})"
