"""The docs never fall behind the code: every setting, metric and endpoint is described."""

from __future__ import annotations

from pathlib import Path

from hashguard.app import create_app
from hashguard.openapi import openapi_document
from kernel import docs_tables
from kernel.metrics import METRIC_NAMES, Metrics
from kernel.settings import Settings, documented_settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_readme_settings_table_is_generated_from_the_code() -> None:
    # Both directions: every setting is documented, and every documented setting exists.
    assert docs_tables.section(README, "settings") == docs_tables.settings_table()


def test_readme_metrics_table_is_generated_from_the_registry() -> None:
    assert docs_tables.section(README, "metrics") == docs_tables.metrics_table()


def test_generated_tables_cover_every_setting_and_metric() -> None:
    table = docs_tables.settings_table()
    assert [env for env, _, _ in documented_settings() if f"| `{env}` |" not in table] == []
    assert [name for name in METRIC_NAMES if f"| `{name}` |" not in docs_tables.metrics_table()] == []


def test_render_replaces_only_the_marked_tables() -> None:
    stale = "intro\n<!-- settings:start -->\n| old |\n<!-- settings:end -->\nmiddle\n<!-- metrics:start -->\n<!-- metrics:end -->\nend\n"
    rendered = docs_tables.render(stale)
    assert rendered.startswith("intro\n<!-- settings:start -->\n| variable |")
    assert "| old |" not in rendered
    assert "\nmiddle\n" in rendered
    assert rendered.endswith("<!-- metrics:end -->\nend\n")
    assert docs_tables.render(rendered) == rendered


def test_every_setting_is_in_the_readme() -> None:
    missing = [env for env, _, _ in documented_settings() if f"`{env}`" not in README]
    assert missing == []


def test_every_metric_is_registered_and_in_the_readme() -> None:
    registered = {m.name for m in Metrics().registry.collect()}
    exported = {name.removesuffix("_total") for name in METRIC_NAMES}
    assert registered == exported
    assert [name for name in METRIC_NAMES if f"`{name}`" not in README] == []


def test_every_route_is_in_openapi_and_the_readme() -> None:
    app = create_app(Settings())  # built, not started: the routes exactly as the service serves them
    routes = {
        (r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource is not None and r.method != "HEAD"
    }
    paths = openapi_document(Settings())["paths"]
    documented = {(method, path) for path, methods in paths.items() for method in methods}
    assert routes == documented
    assert [path for _, path in routes if f"{path}`" not in README] == []
