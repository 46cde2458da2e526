"""Running code in a kernel started by a test's KernelManager."""

from __future__ import annotations

from jupyter_client.manager import KernelManager

__all__ = ["execute"]


def execute(km: KernelManager, code: str) -> str:
    """Run ``code`` in ``km``'s kernel (once it answers); its printed output. The reply must be
    ``ok``."""
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out: list[str] = []
        reply = client.execute_interactive(
            code, timeout=120, output_hook=lambda msg: out.append(msg["content"].get("text", ""))
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)
    finally:
        client.stop_channels()
