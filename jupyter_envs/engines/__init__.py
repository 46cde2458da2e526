"""The engines: how environments are built, stored, and how their kernels run.

- :mod:`.builders`: the ordered builder plug-ins (uv venv, conda, Docker image + Dockerfile
  rendering, a fake for tests), chosen by ``detect()``;
- :mod:`.kernels`: kernelspecs and the places a kernel runs (a local process, a container through
  the provisioner or the launcher), with the orphan reaper;
- :mod:`.store`: the SQLite catalogue of environments and versions, artifact dirs, logs, locks.

Engines import the spec layer and never the façade, clients or front-ends above them.
"""
