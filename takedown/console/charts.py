"""The auditor's figures as tables and SVG charts, drawn on the server. Pure.

The transparency report (``takedown.transparency``) is nested mappings of counts and durations;
the console draws whatever it holds rather than a fixed list of figures, so a figure added to the
report appears in the console with no change here: every mapping of numbers becomes one section
with a table, a bar chart and a CSV download.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

# Keys of the report that describe it rather than count anything.
_META = frozenset({"period", "tenant"})
Number = int | float


@dataclass(frozen=True, kw_only=True, slots=True)
class Section:
    """One figure: a title, a stable id (for links and CSV), and its rows of (label, value)."""

    key: str
    title: str
    rows: tuple[tuple[str, Number | None], ...]

    @property
    def seconds(self) -> bool:
        return "seconds" in self.key

    def shown(self, value: Number | None) -> str:
        if value is None:
            return "—"
        if self.seconds:
            return duration(float(value))
        return f"{value:,}" if isinstance(value, int) else f"{value:,.3f}".rstrip("0").rstrip(".")


def title(key: str) -> str:
    words = key.replace("_", " ").replace(".", " · ")
    return words[:1].upper() + words[1:]


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sections(report: Mapping[str, Any]) -> list[Section]:
    """Every mapping of numbers in ``report`` (at any depth) as a section; loose numbers beside
    mappings are gathered into one section of their parent."""
    found: list[Section] = []

    def walk(key: str, value: Mapping[str, Any]) -> None:
        rows: list[tuple[str, Number | None]] = []
        for name, item in value.items():
            if isinstance(item, Mapping):
                walk(f"{key}.{name}", item)
            elif item is None or _is_number(item):
                rows.append((str(name), item))
        if rows:
            found.append(Section(key=key, title=title(key), rows=tuple(rows)))

    for key, value in report.items():
        if key in _META:
            continue
        if isinstance(value, Mapping):
            walk(key, value)
        elif _is_number(value):
            found.append(Section(key=key, title=title(key), rows=((key, value),)))
    return found


def slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def bar_chart(section: Section, *, width: int = 600) -> str:
    """A horizontal bar chart as inline SVG, described for screen readers by its table beside it."""
    rows = section.rows
    bar_h, gap, top = 22, 8, 8
    # Room for the longest label (about 7 px a character at 12 px), within reason; the table beside has them whole.
    label_w = min(330, max(120, 16 + 7 * max((len(title(label)) for label, _ in rows), default=10)))
    values = [float(v) for _, v in rows if v is not None]
    top_value = max(values, default=0.0) or 1.0
    height = top + len(rows) * (bar_h + gap) + 4
    room = width - label_w - 90
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-{slug(section.key)}-title">',
        f'<title id="chart-{slug(section.key)}-title">{escape(section.title)}: bar chart (the table beside it holds the figures)</title>',
    ]
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_h + gap)
        length = 0.0 if value is None else max(1.0, room * float(value) / top_value) if value else 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" class="chart-label">{escape(title(label))}</text>'
        )
        parts.append(f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" class="chart-bar" rx="3"/>')
        parts.append(
            f'<text x="{label_w + length + 6:.1f}" y="{y + bar_h * 0.7:.1f}" class="chart-value">{escape(section.shown(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (labels can be names staff typed, e.g. a hotline)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(section: Section, period: Mapping[str, Any] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "item", "value", "from", "to"])
    start = (period or {}).get("from", "")
    end = (period or {}).get("to", "")
    for label, value in section.rows:
        writer.writerow([section.key, _cell(label), "" if value is None else value, start, end])
    return out.getvalue()
