"""Front-ends: thin translations of I/O onto the façade.

The ``%%env`` / ``%envs`` magics, the ``jupyter envs`` command line, the REST API of the server
extension (:mod:`.server`), switching the open notebook (:mod:`.activation`), and the widget
panel when it comes (issue #13: a ``widgets`` module here). They decide nothing: the façade
does.
"""
