"""``Container``: build and run an image from a base image and Python dependencies.

Shaped like Prefect's Docker storage/container seed (``Container(image, tag, python_dependencies,
secrets)`` with ``build``, ``create_dockerfile``, ``pull_image`` and ``run``), on the same
Dockerfile renderer and image builder as the ``docker`` backend: the same cache-friendly layers,
CA handling and credential masking. Nothing is registered; the image is the product.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..engines.builders._process import CancelToken
from ..engines.builders.docker import docker_client
from ..engines.builders.dockerfile import prepare_context
from ..engines.builders.images import build_image, run_in_image
from ..errors import BuildError
from ..events import LogLine
from ..spec._environment import Environment

__all__ = ["Container"]


class Container:
    """An image made from ``image`` (the base) plus ``python_dependencies``.

    ``tag`` names the result (default ``jupyter-envs/<name>:<spec hash prefix>``). ``secrets``
    are names of host environment variables handed to :meth:`run` containers at run time; they
    are never written into the image.
    """

    def __init__(
        self,
        image: str,
        tag: str | None = None,
        python_dependencies: Iterable[str] | None = None,
        secrets: Iterable[str] | None = None,
        *,
        name: str = "container",
    ) -> None:
        self.env = Environment(
            name,
            base_image=image,
            pip=list(python_dependencies or ()),
            secrets=list(secrets or ()),
        )
        self.image = image
        self.tag = tag
        #: The built image's tag once :meth:`build` ran.
        self.built: str | None = None

    @property
    def image_tag(self) -> str:
        """The tag :meth:`build` gives the image."""
        from ..engines.builders.dockerfile import image_tag

        return self.tag or image_tag(self.env)

    def create_dockerfile(self, directory: str | Path) -> Path:
        """Write the Dockerfile and its build context into ``directory``; return its path."""
        plan = prepare_context(self.env, Path(directory), tag=self.image_tag)
        return plan.context / "Dockerfile"

    def pull_image(self) -> None:
        """Pull the base image (a BuildError says why when it cannot be pulled)."""
        import docker.errors

        client = docker_client()
        try:
            repo, sep, tag = self.image.rpartition(":")
            if not sep or "/" in tag:
                repo, tag = self.image, "latest"
            client.images.pull(repo, tag=tag)
        except docker.errors.APIError as exc:
            raise BuildError(
                f"the image '{self.image}' cannot be pulled: {exc.explanation or exc}"
            ) from exc
        finally:
            client.close()

    def build(self, cancel: CancelToken | None = None) -> tuple[str, list[str]]:
        """Build the image; return its tag and the build log lines."""
        client = docker_client()
        plan = prepare_context(self.env, tag=self.image_tag)
        logs: list[str] = []
        try:
            gen = build_image(client, plan, cancel or CancelToken(), env_name=self.env.name)
            while True:
                try:
                    event = next(gen)
                except StopIteration as stop:
                    built = stop.value
                    break
                if isinstance(event, LogLine):
                    logs.append(event.text)
        finally:
            shutil.rmtree(plan.context, ignore_errors=True)
            client.close()
        self.built = built.tag
        return built.tag, logs

    def run(self, command: list[str] | str | None = None, tty: bool = False) -> str:
        """Run ``command`` (the image's default without one) in a throwaway container.

        Builds first if needed. Returns the output; a non-zero exit raises BuildError with
        the output's tail. The container is removed whatever happens.
        """
        if self.built is None:
            self.build()
        assert self.built is not None
        secrets = {k: os.environ[k] for k in self.env.secrets if k in os.environ}
        client = docker_client()
        try:
            out, code = run_in_image(
                client, self.built, command, environment=secrets, tty=tty, network=True
            )
        finally:
            client.close()
        if code != 0:
            raise BuildError(
                f"{command!r} exited with status {code} in {self.built}",
                log_tail=out.splitlines()[-20:],
            )
        return out
