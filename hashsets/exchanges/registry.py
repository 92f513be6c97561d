"""Finding connectors: every one, built-in or a plug-in, comes through the ``hashguard.exchanges`` entry points.

Discovery is not trust: a source runs only once an operator adds it (``hashguard exchanges add``).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from detector.tools.registry import TOOL_NAME
from hashsets.exchanges.base import CONNECTOR_NAME, SETTING_NAME, Connector, SettingsProblem

ENTRY_POINT_GROUP = "hashguard.exchanges"


class ConnectorRegistryError(SettingsProblem):
    """An installed connector is broken, or a source names a connector that is not installed."""


def check_declaration(cls: type[Connector], where: str) -> None:
    """Refuse a connector whose declaration is missing or inconsistent, naming what is wrong."""
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorRegistryError(f"{where}: a connector must subclass hashsets.exchanges.base.Connector")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not CONNECTOR_NAME.fullmatch(name):
        raise ConnectorRegistryError(f"{where}: the connector name {name!r} must match {CONNECTOR_NAME.pattern}")
    types = getattr(cls, "hash_types", None)
    if not isinstance(types, tuple) or not types or not all(isinstance(t, str) and TOOL_NAME.fullmatch(t) for t in types):
        raise ConnectorRegistryError(f"{where}: connector {name!r} must declare hash_types, a tuple of tool names")
    seen: set[str] = set()
    for setting in cls.settings:
        if not SETTING_NAME.fullmatch(setting.name) or setting.name in seen:
            raise ConnectorRegistryError(f"{where}: connector {name!r} declares the setting {setting.name!r} badly or twice")
        seen.add(setting.name)
    if cls.fetch is Connector.fetch:
        raise ConnectorRegistryError(f"{where}: connector {name!r} does not implement fetch()")
    if cls.supports_feedback and cls.send_feedback is Connector.send_feedback:
        raise ConnectorRegistryError(f"{where}: connector {name!r} says it supports feedback but has no send_feedback()")


def discover(points: Iterable[EntryPoint] | None = None) -> dict[str, type[Connector]]:
    found: dict[str, type[Connector]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP) if points is None else points:
        where = f"connector {point.name!r} ({point.value})"
        try:
            cls = point.load()
        except Exception as exc:
            raise ConnectorRegistryError(f"{where} could not be loaded: {exc}") from exc
        check_declaration(cls, where)
        if cls.name != point.name:
            raise ConnectorRegistryError(f"{where}: registered as {point.name!r} but names itself {cls.name!r}")
        if cls.name in found:
            raise ConnectorRegistryError(f"two connectors are named {cls.name!r}")
        found[cls.name] = cls
    return found


def connector_class(kind: str) -> type[Connector]:
    installed = discover()
    try:
        return installed[kind]
    except KeyError:
        raise ConnectorRegistryError(
            f"no connector named {kind!r} is installed (installed: {', '.join(sorted(installed)) or 'none'})"
        ) from None
