"""The docs never fall behind the code: every setting, metric and endpoint is described."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from detector import http
from detector.metrics import METRIC_NAMES, Metrics
from detector.openapi import openapi_document
from detector.settings import Settings, documented_settings
from takedown import http as takedown_http

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [env for env, _, _ in documented_settings() if f"`{env}`" not in README]
    assert missing == []


def test_every_metric_is_registered_and_in_the_readme() -> None:
    registered = {m.name for m in Metrics().registry.collect()}
    exported = {name.removesuffix("_total") for name in METRIC_NAMES}
    assert registered == exported
    assert [name for name in METRIC_NAMES if f"`{name}`" not in README] == []


def test_every_route_is_in_openapi_and_the_readme() -> None:
    app = web.Application()
    http.setup_routes(app)
    takedown_http.setup_routes(app)
    routes = {
        (r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource is not None and r.method != "HEAD"
    }
    paths = openapi_document(Settings())["paths"]
    documented = {(method, path) for path, methods in paths.items() for method in methods}
    assert routes == documented
    assert [path for _, path in routes if f"{path}`" not in README] == []
