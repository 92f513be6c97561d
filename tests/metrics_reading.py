"""Reading prometheus metrics the way a scraper does, through prometheus_client's public API only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def sample_value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """The value of one sample (for a counter ``name`` is ``<counter>_total``), or None if there is none."""
    return registry.get_sample_value(name, labels)


def samples(exposition: str | bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a text exposition (``/metrics`` or ``generate_latest``), keyed by name and labels."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    return {
        (s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text) for s in family.samples
    }


def scraped(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """What a scrape of ``registry`` would show, parsed."""
    return samples(generate_latest(registry))
