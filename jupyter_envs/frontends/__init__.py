"""Front-ends: thin translations of I/O onto the façade.

The ``%%env`` / ``%envs`` magics, the ``jupyter envs`` command line, the REST API of the server
extension (:mod:`.server`) and the widget panel (:mod:`.widgets`). They decide nothing: the
façade does.
"""
