"""The README's settings and metrics tables, generated from the code so they cannot drift.

The settings table comes from the ``Settings`` fields (``kernel.settings.documented_settings``),
the metrics table from what a fresh ``Metrics`` registry exports. Each table sits in the README
between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers; a unit test checks the README holds
exactly the generated text. Regenerate after changing a setting or a metric::

    python -m kernel.docs_tables            # rewrite the tables in README.md
    python -m kernel.docs_tables --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from kernel.metrics import Metrics
from kernel.settings import documented_settings

README = Path(__file__).parents[1] / "README.md"

_NAME = re.compile(r"(?<![`\w])(HASHGUARD_[A-Z0-9_]+|hashguard_[a-z0-9_]+)(?![`\w])")


def _cell(text: str) -> str:
    """One markdown table cell: pipes escaped, setting and metric names shown as code."""
    return _NAME.sub(r"`\1`", text.replace("|", "\\|").replace("\n", " "))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """Markdown table of every ``HASHGUARD_*`` setting: variable, default, meaning."""
    rows = [(f"`{env}`", _cell(default), _cell(help)) for env, default, help in documented_settings()]
    return _table(("variable", "default", "meaning"), rows)


def documented_metrics() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(exported name, type, label names, help) for every metric, in registration order."""
    metrics = Metrics()
    # Label names are not part of a collected family without samples; read them off the wrappers.
    labels = {
        wrapper._name: tuple(wrapper._labelnames)
        for wrapper in (getattr(metrics, f.name) for f in fields(metrics))
        if isinstance(wrapper, MetricWrapperBase)
    }
    rows = []
    for family in metrics.registry.collect():
        exported = family.name + "_total" if family.type == "counter" else family.name
        rows.append((exported, family.type, labels[family.name], family.documentation))
    return rows


def metrics_table() -> str:
    """Markdown table of every metric on ``/metrics``: name, type, labels, meaning."""
    rows = [
        (f"`{name}`", kind, ", ".join(f"`{label}`" for label in labels), _cell(help))
        for name, kind, labels, help in documented_metrics()
    ]
    return _table(("metric", "type", "labels", "meaning"), rows)


TABLES = {"settings": settings_table, "metrics": metrics_table}


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"


def section(text: str, name: str) -> str:
    """The text between the ``name`` markers of ``text`` (the README)."""
    start, end = _markers(name)
    _, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"README has no {start.strip()} … {end} section")
    return rest.partition(end)[0]


def render(text: str) -> str:
    """``text`` with every marked table replaced by its generated version."""
    for name, generate in TABLES.items():
        start, end = _markers(name)
        old = section(text, name)
        text = text.replace(start + old + end, start + generate() + end, 1)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kernel.docs_tables", description="Regenerate the README settings and metrics tables."
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the README tables are out of date")
    parser.add_argument("--readme", type=Path, default=README, help="the README to update (default: the repository's)")
    args = parser.parse_args(argv)
    current = args.readme.read_text()
    wanted = render(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.readme}: settings/metrics tables are out of date; run python -m kernel.docs_tables", file=sys.stderr)
        return 1
    args.readme.write_text(wanted)
    print(f"{args.readme}: tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
