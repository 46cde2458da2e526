"""Render the Dockerfile of an environment, and prepare its build context.

The generated Dockerfile is laid out for the layer cache, slowest and least changing first::

    FROM base image            (or the user's Dockerfile text, verbatim)
    COPY build CA bundle        only when the host has one (TLS-intercepting proxies)
    RUN  apt-get install …      one layer, packages sorted
    RUN  python3 -m venv /opt/jenv && pip install uv
    RUN  uv pip install <kernel-side requirements>
    RUN  uv pip install <user requirements> <kernel-side requirements>   (sorted, one layer)
    COPY the jupyter_envs package; RUN .pth into the environment
    ENV  env_vars;  LABEL jupyter-envs.*

The kernel-side requirements (ipykernel …) get their own layer *before* the user's requirements:
they are the bulk of the download and never change, so adding one package to a spec reruns only
the small last install. That layer lists them again, so the resolver sees the user's pins and the
kernel's needs together (a user pin of e.g. ``traitlets`` still wins or fails loudly).

Index settings (host pip config and the spec's ``pip_options``) reach the build as build args,
never as Dockerfile text. The legacy builder writes build args into the image history, so when any
of them carries credentials the Python environment is installed in a separate stage and only
``/opt/jenv`` is copied into the final image: its history never sees them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._version import __version__
from ...errors import BuildError, SpecError
from ...spec._requirements import lock_pins
from ..docker import LABEL_ENV, LABEL_PYTHON, LABEL_SPEC_HASH, LABEL_VERSION
from ..runtime import KERNEL_SIDE_REQUIREMENTS
from .docker_index import (
    ARG_NAMES,
    IndexSettings,
    has_index_credentials,
    index_settings,
    mask_secrets,
)

if TYPE_CHECKING:
    from ...spec._environment import Environment

__all__ = [
    "BASE_IMAGE_ENV",
    "DEFAULT_BASE_IMAGE",
    "VENV_PATH",
    "BuildPlan",
    "default_base_image",
    "image_details",
    "image_tag",
    "prepare_context",
    "render_dockerfile",
]

#: The base image for specs that name none (overridden by ``JUPYTER_ENVS_DEFAULT_BASE_IMAGE``).
DEFAULT_BASE_IMAGE = "python:3.12-slim"
BASE_IMAGE_ENV = "JUPYTER_ENVS_DEFAULT_BASE_IMAGE"
#: Where the generated Dockerfile makes the environment's venv.
VENV_PATH = "/opt/jenv"
#: Where the jupyter_envs package (kernel side) is copied in the image.
RUNTIME_PATH = "/opt/jupyter-envs/runtime"
# Build-time only: removed in the last RUN step (it stays hidden in its COPY layer, which is fine:
# it is the public CA bundle of this host, not a secret).
_BUILD_DIR = "/opt/jupyter-envs/build"
_CA_NAME = "jenv-build/ca.crt"
_RUNTIME_CONTEXT = "jenv-build/runtime"
# A conda prefix built on the host, as one tar archive that ADD unpacks at VENV_PATH: sending
# thousands of small files through the build context and COPYing them took ~29 s of a 39 s
# build (tar archive: see benchmarks/docker_conda.py).
CONDA_CONTEXT = "jenv-conda.tar"


def default_base_image() -> str:
    """``JUPYTER_ENVS_DEFAULT_BASE_IMAGE`` if set, else :data:`DEFAULT_BASE_IMAGE`."""
    return os.environ.get(BASE_IMAGE_ENV, "").strip() or DEFAULT_BASE_IMAGE


def image_tag(env: Environment) -> str:
    """The tag a build of ``env`` gets: ``jupyter-envs/<name>:<spec hash prefix>``."""
    return f"jupyter-envs/{env.name}:{env.spec_hash[:12]}"


def _kernel_python(env: Environment) -> str:
    if env.python.user_managed_dependencies:
        return env.python.interpreter_path or "/usr/bin/python3"
    return f"{VENV_PATH}/bin/python"


def _quote_lines(items: list[str], indent: str = "        ") -> str:
    return " \\\n".join(indent + shlex.quote(item) for item in items)


def _tls_exports(with_ca: bool) -> str:
    if not with_ca:
        return ""
    ca = f"{_BUILD_DIR}/ca.crt"
    # uv and most tools read SSL_CERT_FILE, pip reads PIP_CERT, requests REQUESTS_CA_BUNDLE;
    # set on the RUN line only: the image's runtime environment is untouched.
    return f"export SSL_CERT_FILE={ca} PIP_CERT={ca} REQUESTS_CA_BUNDLE={ca}; "


def _last_user(dockerfile: str) -> str | None:
    user = None
    for line in dockerfile.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].upper() == "USER":
            user = parts[1].strip()
    return user


def _name_last_stage(dockerfile: str, default: str) -> tuple[str, str]:
    """Give the last ``FROM`` of a user Dockerfile a stage name (reused if it has one)."""
    lines = dockerfile.rstrip("\n").splitlines()
    for i in range(len(lines) - 1, -1, -1):
        words = lines[i].split()
        if words and words[0].upper() == "FROM":
            if len(words) >= 4 and words[-2].upper() == "AS":
                return dockerfile, words[-1]
            lines[i] = lines[i].rstrip() + f" AS {default}"
            return "\n".join(lines) + "\n", default
    return dockerfile, default


def render_dockerfile(
    env: Environment, *, environ: dict[str, str] | None = None, lock: str | None = None
) -> str:
    """The Dockerfile that building ``env`` runs, exactly (see the module docstring).

    Deterministic for a spec and a host configuration: equal specs give equal text, so the
    legacy builder's layer cache applies. ``environ`` stands in for ``os.environ`` (tests).
    With ``lock`` (a Docker version's lock, carried by a notebook) the image installs exactly
    the locked versions, on the base image digest the lock records when there is one.
    """
    settings = index_settings(env, environ)
    return _render(env, settings, lock)


#: The lock's first line for a Docker version: the base image, by digest when the engine knows
#: one (``python@sha256:...``), else by name and image id (a local image has no digest).
BASE_IMAGE_LINE = "# base image: "


def base_image_line(reference: str, image_id: str | None = None) -> str:
    """The lock line that records the base image."""
    return BASE_IMAGE_LINE + reference + (f" (image {image_id})" if image_id else "")


def locked_base(lock: str | None) -> tuple[str | None, str | None]:
    """(reference, image id) of the base image a Docker lock records, or (None, None)."""
    for line in (lock or "").splitlines():
        if line.startswith(BASE_IMAGE_LINE):
            ref, _, rest = line[len(BASE_IMAGE_LINE) :].strip().partition(" ")
            image_id = rest.strip().removeprefix("(image ").removesuffix(")") or None
            return ref, image_id
    return None, None


_IMAGE_OPTIONS = ("--index-url", "--extra-index-url", "--find-links")


# What the classic builder (the one an engine without BuildKit has, and the one these builds use)
# does not understand: flags of RUN/COPY/ADD, and heredocs.
_BUILDKIT_FLAGS = re.compile(
    r"^(RUN|COPY|ADD)\s+(?:--\S+\s+)*?(--(?:mount|network|security|link|parents|exclude|"
    r"checksum|keep-git-dir|chmod)\b)",
    re.IGNORECASE,
)
_HEREDOC = re.compile(r"^(RUN|COPY|ADD)\s+(?:--\S+\s+)*<<-?\s*[\"']?[A-Za-z_]", re.IGNORECASE)


def check_classic_syntax(dockerfile: str) -> None:
    """Refuse BuildKit-only syntax, naming its line: these images are built by the classic
    builder, which fails on it with "Unknown flag" deep in a build (or runs a heredoc wrong)."""
    for lineno, raw in enumerate(dockerfile.splitlines(), start=1):
        line = raw.strip()
        flag = _BUILDKIT_FLAGS.match(line)
        feature = f"{flag.group(1).upper()} {flag.group(2)}" if flag else None
        if feature is None and _HEREDOC.match(line):
            feature = "a heredoc (<<EOF)"
        if feature is not None:
            raise SpecError(
                f"{feature} needs BuildKit, and images here are built by Docker's classic "
                "builder: rewrite that step without it (e.g. RUN pip install --no-cache-dir "
                "instead of a cache mount, COPY then RUN chmod instead of --chmod)",
                field="docker.base_dockerfile",
                line=lineno,
                text=line,
            )


def _refuse_what_an_image_cannot_take(env: Environment) -> None:
    """What a requirements text may hold but an image build does not honour yet: refused by
    name rather than dropped (a dropped --hash would install unverified packages)."""
    problems = []
    local = env.local_paths()
    if local:
        problems.append(f"local paths of this machine ({', '.join(local)})")
    hashed = [r.split(" ", 1)[0] for r in env.all_pip_requirements() if " --hash=" in r]
    if hashed:
        problems.append(f"hash-checked requirements ({', '.join(hashed[:3])}...)")
    if env.pip_constraints:
        problems.append("constraints (-c)")
    other = [o for o in env.all_pip_options() if o.split(" ", 1)[0] not in (*_IMAGE_OPTIONS, "-e")]
    if other:
        problems.append(f"the installer options {', '.join(other)}")
    if problems:
        raise BuildError(
            "a Docker environment cannot use "
            + "; ".join(problems)
            + " yet: build it with the uv builder (no image), or put those steps in the "
            "Dockerfile (docker.base_dockerfile)",
            env_name=env.name,
        )


def needs_conda(env: Environment) -> bool:
    """True when the image's environment is a conda prefix (conda packages beyond python/pip)."""
    conda = env.python.conda_dependencies
    return conda is not None and conda.needs_conda()


def _render(env: Environment, settings: IndexSettings, lock: str | None = None) -> str:
    conda = needs_conda(env)
    user_managed = env.python.user_managed_dependencies
    if conda and user_managed:
        raise BuildError(
            "python.user_managed_dependencies uses the image's own interpreter, so conda "
            "packages would be ignored: install them in the Dockerfile, or drop the setting",
            env_name=env.name,
        )
    if not conda:
        # A conda prefix is made on the host (pip section included): none of this applies.
        _refuse_what_an_image_cannot_take(env)
    if env.docker.base_dockerfile:
        check_classic_syntax(env.docker.base_dockerfile)
    requirements = [] if conda else sorted(env.all_pip_requirements())
    if lock is not None and not user_managed and not conda:
        # The lock wins over the spec: the versions of the first build, kernel side included.
        requirements = sorted(lock_pins(lock))
    if user_managed and requirements:
        raise BuildError(
            "python.user_managed_dependencies: the image's interpreter is used as it is, so "
            "pip requirements would be ignored; install them in the Dockerfile instead",
            env_name=env.name,
        )
    with_ca = settings.ca_file is not None
    tls = _tls_exports(with_ca)
    separate_install = has_index_credentials(settings) and not user_managed
    python = _kernel_python(env)
    user_text = env.docker.base_dockerfile
    out: list[str] = [
        f"# Generated by jupyter-envs {__version__} for environment '{env.name}'.",
    ]
    restore_user: str | None = None
    base_stage = "jenv-base"
    if user_text:
        text = user_text if user_text.endswith("\n") else user_text + "\n"
        if separate_install:
            text, base_stage = _name_last_stage(text, base_stage)
        out.append(text.rstrip("\n"))
        out.append("# --- jupyter-envs layers ---")
        restore_user = _last_user(user_text)
        if restore_user:
            out.append("USER root")
    else:
        base = env.docker.base_image or env.image or default_base_image()
        pinned, _image_id = locked_base(lock)
        if pinned and "@sha256:" in pinned:
            base = pinned  # the very image the lock was made on
        out.append(f"FROM {base}" + (f" AS {base_stage}" if separate_install else ""))
    if with_ca:
        out.append(f"COPY {_CA_NAME} {_BUILD_DIR}/ca.crt")
    if env.docker.apt_packages:
        apt = sorted(set(env.docker.apt_packages))
        ca_opt = f"-o Acquire::https::CAInfo={_BUILD_DIR}/ca.crt " if with_ca else ""
        out.append(
            "RUN export DEBIAN_FRONTEND=noninteractive; set -e; \\\n"
            f"    apt-get {ca_opt}update; \\\n"
            f"    apt-get {ca_opt}install -y --no-install-recommends \\\n"
            f"{_quote_lines(apt)}; \\\n"
            "    rm -rf /var/lib/apt/lists/*"
        )
    if separate_install:
        out.append(f"FROM {base_stage} AS jenv-install")
        if with_ca:
            out.append(f"COPY {_CA_NAME} {_BUILD_DIR}/ca.crt")
    # Declared after the apt layer, so index settings never invalidate it.
    if not conda:  # a conda prefix arrives installed: no index is used in the build
        out.extend(f"ARG {name}" for name in ARG_NAMES)
    kernel_reqs = list(KERNEL_SIDE_REQUIREMENTS)
    if user_managed:
        out.append(
            f"RUN {tls}set -e; \\\n"
            f'    test -x {python} || {{ echo "jupyter-envs: {python} '
            '(python.interpreter_path) is not in the image" >&2; exit 1; }; \\\n'
            f"    PIP_BREAK_SYSTEM_PACKAGES=1 {python} -m pip install --no-cache-dir \\\n"
            f"{_quote_lines(kernel_reqs)}"
        )
    elif conda:
        # Solved and installed on the host for this image's path (see the conda builder): the
        # base image needs no Python of its own, only a glibc as recent as the packages'.
        out.append(f"ADD {CONDA_CONTEXT} {VENV_PATH}/")
    else:
        check = ""
        want = env.effective_python()
        if want:
            check = (
                "    python3 -c 'import sys; v=sys.argv[1]; "
                'have="%d.%d.%d" % sys.version_info[:3]; '
                '(have+".").startswith(v+".") or sys.exit("jupyter-envs: the base image has '
                "Python %s, the spec asks for %s\" % (have, v))' "
                f"{shlex.quote(want)}; \\\n"
            )
        # Over a user's Dockerfile (or a given image) the venv sees the image's own packages,
        # which is what a Dockerfile that pip-installs into the system Python means.
        system = " --system-site-packages" if (user_text or env.image) else ""
        out.append(
            f"RUN {tls}set -e; \\\n"
            '    command -v python3 >/dev/null || { echo "jupyter-envs: the base image has no '
            'python3 on PATH" >&2; exit 1; }; \\\n'
            f"{check}"
            f"    python3 -m venv{system} {VENV_PATH}; \\\n"
            f"    {VENV_PATH}/bin/python -m pip install --no-cache-dir --disable-pip-version-check"
            " uv"
        )
        uv = f"{VENV_PATH}/bin/uv pip install --no-cache --python {python}"
        out.append(f"RUN {tls}set -e; \\\n    {uv} \\\n{_quote_lines(kernel_reqs)}")
        if requirements:
            out.append(
                f"RUN {tls}set -e; \\\n    {uv} \\\n{_quote_lines(requirements + kernel_reqs)}"
            )
    if separate_install:
        out.append(f"FROM {base_stage}")
        out.append(f"COPY --from=jenv-install {VENV_PATH} {VENV_PATH}")
    out.append(f"COPY {_RUNTIME_CONTEXT} {RUNTIME_PATH}")
    # The .pth puts the kernel side of jupyter_envs on the kernel interpreter's path, so %%env
    # works inside container kernels without installing jupyter-envs from an index.
    out.append(
        "RUN set -e; "
        f"{python} -c 'import sys, sysconfig, pathlib; "
        'pathlib.Path(sysconfig.get_paths()["purelib"], "_jupyter_envs_runtime.pth")'
        f'.write_text(sys.argv[1] + "\\n")\' {RUNTIME_PATH}; \\\n'
        f"    rm -rf {_BUILD_DIR}"
    )
    if conda:
        out.append(f"ENV CONDA_PREFIX={VENV_PATH} PATH={VENV_PATH}/bin:$PATH")
    elif not user_managed:
        out.append(f"ENV VIRTUAL_ENV={VENV_PATH} PATH={VENV_PATH}/bin:$PATH")
    for key, value in sorted(env.kernel_env_vars.items()):
        out.append(f"ENV {key}={_env_quote(value)}")
    if restore_user:
        out.append(f"USER {restore_user}")
    # Last: the spec hash changes with every spec change, and nothing after it can be cached.
    labels = {
        LABEL_ENV: env.name,
        LABEL_VERSION: __version__,
        LABEL_SPEC_HASH: env.spec_hash,
        LABEL_PYTHON: python,
    }
    out.append("LABEL " + " \\\n      ".join(f'{k}="{_label_quote(v)}"' for k, v in labels.items()))
    return "\n".join(out) + "\n"


def _env_quote(value: str) -> str:
    # Dockerfile ENV values are double-quoted strings with backslash escapes; "$" would expand.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _label_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


@dataclass(frozen=True)
class BuildPlan:
    """A build context on disk and what to pass to the engine with it."""

    context: Path
    dockerfile: str
    tag: str
    buildargs: dict[str, str]
    #: Strings that must never be logged (credentials from index URLs and proxies).
    secrets: tuple[str, ...]
    #: Lines for the build log: what was adapted for the container and why.
    notes: tuple[str, ...]
    #: The base image of a generated Dockerfile (None for a user's Dockerfile).
    base_image: str | None
    python: str
    #: Stage names whose images are dropped after the build (they hold index credentials).
    private_stages: tuple[str, ...] = field(default=())


def _copy_package(runtime_dir: Path | None, dest: Path) -> None:
    from ..runtime import PACKAGE_DIR, package_files

    source = runtime_dir / "jupyter_envs" if runtime_dir is not None else None
    if source is not None and (source / "__init__.py").is_file():
        shutil.copytree(source, dest / "jupyter_envs", ignore=shutil.ignore_patterns("*.pyc"))
        return
    for path in package_files():
        out = dest / "jupyter_envs" / path.relative_to(PACKAGE_DIR)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)


def _pack(folder: Path, archive: Path) -> None:
    """``folder``'s content as an uncompressed tar (hard links, modes and symlinks kept): GNU
    tar when there is one (several times faster than the tarfile module), else tarfile."""
    tar = shutil.which("tar")
    if tar is not None:
        done = subprocess.run(
            [tar, "-C", str(folder), "-cf", str(archive), "."],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return
    with tarfile.open(archive, "w") as out:
        for path in sorted(folder.iterdir()):
            out.add(path, arcname=path.name)


def prepare_context(
    env: Environment,
    directory: Path | None = None,
    *,
    runtime_dir: Path | None = None,
    tag: str | None = None,
    lock: str | None = None,
    conda_prefix: Path | None = None,
) -> BuildPlan:
    """Write the Dockerfile, the CA bundle and the jupyter_envs package into a build context.

    ``directory`` defaults to a new temporary directory (the caller removes it).
    ``runtime_dir`` is the store's runtime copy of the package; the running package otherwise.
    ``conda_prefix`` (a conda spec) is the prefix built for the image's path: it is moved into
    the context.
    """
    if needs_conda(env) and conda_prefix is None:
        raise BuildError(
            "a conda environment's image needs its prefix built first", env_name=env.name
        )
    settings = index_settings(env)
    text = _render(env, settings, lock)
    context = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="jenv-"))
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(text)
    build = context / "jenv-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    if settings.ca_file is not None:
        shutil.copyfile(settings.ca_file, context / _CA_NAME)
    _copy_package(runtime_dir, context / _RUNTIME_CONTEXT)
    if conda_prefix is not None:
        _pack(conda_prefix, context / CONDA_CONTEXT)
    for path in (context / "jenv-build").rglob("*"):
        # Fixed modes: the legacy builder's COPY cache key includes them.
        path.chmod(0o755 if path.is_dir() else 0o644)
    separate = has_index_credentials(settings) and not env.python.user_managed_dependencies
    return BuildPlan(
        context=context,
        dockerfile=text,
        tag=tag or image_tag(env),
        # A conda prefix arrives installed (its pip section by uv on this machine).
        buildargs={} if needs_conda(env) else settings.buildargs,
        secrets=settings.secrets,
        notes=settings.notes,
        base_image=None
        if env.docker.base_dockerfile
        else (_pinned_base(lock) or env.docker.base_image or env.image or default_base_image()),
        python=_kernel_python(env),
        private_stages=("jenv-install",) if separate else (),
    )


def _pinned_base(lock: str | None) -> str | None:
    pinned, _ = locked_base(lock)
    return pinned if pinned and "@sha256:" in pinned else None


def image_details(env: Environment) -> dict[str, Any]:
    """What building ``env`` would make: tag, base image, labels and the Dockerfile.

    ``["ingredients"]["dockerfile"]`` is exactly the text that is built. Build args are listed
    with credentials masked (their values are not part of the Dockerfile).
    """
    settings = index_settings(env)
    text = _render(env, settings)
    return {
        "image": image_tag(env),
        "base_image": None
        if env.docker.base_dockerfile
        else (env.docker.base_image or env.image or default_base_image()),
        "python": _kernel_python(env),
        "labels": {
            LABEL_ENV: env.name,
            LABEL_VERSION: __version__,
            LABEL_SPEC_HASH: env.spec_hash,
            LABEL_PYTHON: _kernel_python(env),
        },
        "ingredients": {
            "dockerfile": text,
            "build_args": {
                k: mask_secrets(v, settings.secrets) for k, v in sorted(settings.buildargs.items())
            },
            "notes": list(settings.notes),
        },
    }
