"""What the panel shows, computed without widgets (so it is tested without a frontend).

The environments table, the field a validation error belongs to, and the log tail as HTML.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...clients.envs import EnvsClient
from ...engines.store import VersionRecord

__all__ = ["FIELDS", "Row", "field_of", "rows", "table_html", "tail_html", "text_table"]

#: The create form's fields; a SpecError's ``field`` is shown next to one of them.
FIELDS = ("name", "format", "spec", "backend", "python", "base_image")


@dataclass(frozen=True)
class Row:
    """One environment as the table shows it."""

    name: str
    backend: str
    version: int
    versions: tuple[int, ...]
    status: str
    size: int | None
    built: float | None
    kernel: str


def _status(client: EnvsClient, record: VersionRecord) -> str:
    """ready / registered, or building (a build of it runs anywhere), or failed (its last build
    failed: the version shown is still the last good one)."""
    builds = client.builds(record.name)
    if any(b.status == "running" for b in builds):
        return "building"
    if builds and builds[-1].status in ("failed", "cancelled"):
        return builds[-1].status
    return record.status


def rows(client: EnvsClient, sizes: dict[str, int | None] | None = None) -> list[Row]:
    """Every environment's latest version (``sizes`` caches disk usage by artifact path)."""
    cache = sizes if sizes is not None else {}
    out = []
    for item in client.page().items:
        record = item.record
        key = record.artifact or ""
        if key not in cache:
            cache[key] = client.disk_usage(record)
        out.append(
            Row(
                name=record.name,
                backend=record.backend,
                version=record.version,
                versions=tuple(item.versions),
                status=_status(client, record),
                size=cache[key],
                built=record.created if record.status == "ready" else None,
                kernel=record.kernel_name or "",
            )
        )
    return out


def _size(size: int | None) -> str:
    if size is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return "—"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "—"


_HEAD = ("Name", "Backend", "Version", "Status", "Size", "Built", "Kernel")
_COLOURS = {"building": "var(--jp-warn-color1)", "failed": "var(--jp-error-color1)"}


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.name,
        row.backend,
        f"v{row.version}",
        row.status,
        _size(row.size),
        _when(row.built),
        row.kernel,
    )


def table_html(table: Sequence[Row]) -> str:
    """The table as HTML (escaped)."""
    if not table:
        return "<p><i>No environments yet: create one below, or with a %%env cell.</i></p>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in _HEAD)
    body = []
    for row in table:
        colour = _COLOURS.get(row.status)
        cells = []
        for i, cell in enumerate(_cells(row)):
            style = "padding:2px 8px"
            if i == 3 and colour:
                style += f";color:{colour};font-weight:bold"
            cells.append(f"<td style='{style}'>{html.escape(cell)}</td>")
        body.append(f"<tr class='jp-envs-panel-row' data-env='{html.escape(row.name)}'>"
                    + "".join(cells) + "</tr>")  # fmt: skip
    return (
        "<table class='jp-envs-panel-table' style='border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def text_table(table: Sequence[Row]) -> str:
    """The table as plain text (the fallback of a frontend without widgets)."""
    lines = [list(_HEAD), *[list(_cells(r)) for r in table]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEAD))]
    padded = ("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines)
    return "\n".join(text.rstrip() for text in padded)


def field_of(error_field: str | None) -> str:
    """The form field a SpecError's ``field`` belongs to (the spec text when unsure)."""
    if error_field in (None, ""):
        return "spec"
    assert error_field is not None
    if error_field == "name":
        return "name"
    if error_field == "format":
        return "format"
    if error_field in ("backend",):
        return "backend"
    if error_field.startswith("python") and "conda" not in error_field:
        return "python"
    if error_field.startswith("docker.base_image") or error_field == "image":
        return "base_image"
    return "spec"


def tail_html(lines: Iterable[str], keep: int = 30) -> str:
    """The last ``keep`` log lines as a scrolling pre block."""
    last = list(lines)[-keep:]
    text = html.escape("\n".join(line[:300] for line in last))
    return (
        "<pre class='jp-envs-panel-log' style='max-height:14em;overflow:auto;margin:0;"
        f"font-size:85%;white-space:pre-wrap'>{text}</pre>"
    )
