"""The façade: the only place that orchestrates spec → build → register → kernelspec.

:class:`~.manager.EnvManager` is what every front-end (REST handlers, magics, CLI, widgets)
calls; :class:`~.container.Container` is the Prefect-style image API over the Docker builder.
"""
