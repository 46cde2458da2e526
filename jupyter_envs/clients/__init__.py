"""Clients: a kernel's link to the Jupyter server that runs the extension.

The server link (URL, scoped token, ``http+unix`` for container kernels), builds submitted to
that server, and switching the open notebook to another kernel.
"""
