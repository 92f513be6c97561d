"""The docs never fall behind the code: every setting, metric and endpoint is described."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import schemathesis

from hashguard.app import create_app, service_routes
from hashguard.openapi import openapi_document, openapi_path
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
    # The console's pages (/console/...) are HTML for people, not API: outside the document.
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD" and not r.resource.canonical.startswith("/console")
    }
    paths = openapi_document(service_routes())["paths"]
    documented = {(method, path) for path, methods in paths.items() for method in methods}
    assert routes == documented
    assert [path for _, path in routes if f"{path}`" not in README] == []


def _document() -> dict[str, Any]:
    return openapi_document(service_routes())


def test_every_routes_roles_are_in_the_document() -> None:
    # The role tests and the document read the same table: x-roles, the description and the security.
    paths = _document()["paths"]
    for route in service_routes():
        operation = paths[openapi_path(route.path)][route.method.lower()]
        roles = sorted(r.value for r in route.roles)
        assert operation["x-roles"] == roles, route.key
        if roles:
            assert f"Roles: {', '.join(roles)}." in operation["description"], route.key
            assert operation["security"] == [{"bearer": []}]
            assert {"401", "403"} <= set(operation["responses"]), route.key
        else:
            assert "security" not in operation and "Public" in operation["description"], route.key


def test_the_document_is_valid_openapi_3_1_with_valid_json_schemas() -> None:
    document = _document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_every_json_body_documents_its_limits_and_every_route_its_errors() -> None:
    paths = _document()["paths"]
    for route in service_routes():
        operation = paths[openapi_path(route.path)][route.method.lower()]
        responses = set(operation["responses"])
        if route.body is not None:
            assert {"400", "413", "415"} <= responses, route.key
            assert "application/json" in operation["requestBody"]["content"]
        assert {str(s) for s in route.error_statuses()} <= responses, route.key
        assert {str(s) for s in route.responses} <= responses, route.key


def test_enums_come_from_the_code() -> None:
    from takedown.workflow import Source, State

    schemas = _document()["components"]["schemas"]
    assert set(schemas["State"]["enum"]) == {s.value for s in State}
    assert set(schemas["Source"]["enum"]) == {s.value for s in Source}
    notice_sources = schemas["NoticeBody"]["properties"]["source"]["enum"]
    assert set(notice_sources) == {s.value for s in Source} - {"hash_match"}


def test_the_schema_is_as_strict_as_the_text_rule() -> None:
    schemas = _document()["components"]["schemas"]
    notice = schemas["NoticeBody"]
    assert set(notice["required"]) == {"source", "content_id"}
    content_id = notice["properties"]["content_id"]
    assert content_id["minLength"] == 1 and content_id["maxLength"] == 1024 and "\\x00" in content_id["pattern"]
    assert schemas["NewApproval"]["additionalProperties"] is False  # unknown fields refused, as the server does
    lookup = schemas["LookupBatch"]["properties"]["items"]
    assert lookup["minItems"] == 1 and lookup["maxItems"] == 1000


def test_the_readme_endpoint_table_names_each_routes_roles() -> None:
    # The "who" column is read against the route table: a role change has to change the README too.
    rows = re.findall(r"^\| `(GET|POST|PUT|DELETE) (/[^`]*)` \| ([^|]+) \|", README, flags=re.MULTILINE)
    readme = {(method, path): who.strip().removesuffix(" key") for method, path, who in rows}
    expected = {
        (route.method, openapi_path(route.path)): ", ".join(sorted(r.value for r in route.roles)) or "anyone"
        for route in service_routes()
    }
    assert {k: ", ".join(sorted(v.split(", "))) for k, v in readme.items()} == expected
