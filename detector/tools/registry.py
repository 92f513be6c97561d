"""Finding detection tools: every tool, built-in or not, comes through the ``hashguard.tools`` entry points.

Discovery is not approval. The registry knows which tools are *installed* (and checks that
each one declares itself properly, so a broken plug-in stops the start with a clear message
instead of failing at the first scan); ``detector.tools.policy`` decides which of them may scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from detector.errors import UnknownTool
from detector.tools.base import HashTool, IndexKind, ToolKind

ENTRY_POINT_GROUP = "hashguard.tools"

# Tool names appear in URLs, metric labels, list files and approvals: keep them plain.
TOOL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class ToolRegistryError(RuntimeError):
    """The installed detection tools are inconsistent."""


def check_declaration(tool: HashTool, where: str) -> None:
    """Refuse a tool whose class attributes are missing or inconsistent, naming what is wrong."""

    def attr(name: str) -> Any:
        try:
            return getattr(tool, name)
        except AttributeError:
            raise ToolRegistryError(f"{where}: the tool class does not declare {name!r}") from None

    name, version, kind, bits, threshold = (attr(n) for n in ("name", "version", "kind", "bits", "default_threshold"))
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise ToolRegistryError(f"{where}: the tool name {name!r} must match {TOOL_NAME.pattern}")
    if not isinstance(version, str) or not version.strip():
        raise ToolRegistryError(f"{where}: tool {name!r} must declare a non-empty version string")
    if not isinstance(kind, ToolKind):
        raise ToolRegistryError(f"{where}: tool {name!r} kind must be a ToolKind, not {kind!r}")
    if not isinstance(bits, int) or isinstance(bits, bool) or bits <= 0 or bits % 8:
        raise ToolRegistryError(f"{where}: tool {name!r} bits must be a positive multiple of 8, not {bits!r}")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold < bits:
        raise ToolRegistryError(f"{where}: tool {name!r} default_threshold must be an int in [0, {bits}), not {threshold!r}")
    if tool.index_kind() is IndexKind.EXACT and threshold:
        raise ToolRegistryError(f"{where}: tool {name!r} uses the exact index, so its default_threshold must be 0")
    if not tool.media_types or not all(isinstance(t, str) and "/" in t for t in tool.media_types):
        raise ToolRegistryError(f"{where}: tool {name!r} must declare media_types such as 'image/jpeg'")


def _origin(point: EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"{point.value} from the distribution {dist.name!r}" if dist is not None else point.value


def discover(points: Iterable[EntryPoint] | None = None) -> dict[str, HashTool]:
    """Load and instantiate every registered tool. Duplicate names are an error, not a silent override."""
    found: dict[str, HashTool] = {}
    origin: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP) if points is None else points:
        where = f"entry point {point.name!r} ({point.value})"
        try:
            cls = point.load()
        except Exception as exc:  # a plug-in that cannot even be imported must stop the start, clearly
            raise ToolRegistryError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, HashTool)):
            raise ToolRegistryError(f"entry point {point.name!r} ({point.value}) is not a HashTool subclass")
        try:
            tool = cls()
        except TypeError as exc:  # abstract methods left unimplemented
            raise ToolRegistryError(f"{where} cannot be instantiated: {exc}") from exc
        check_declaration(tool, where)
        if tool.name != point.name:
            raise ToolRegistryError(f"entry point {point.name!r} loads a tool named {tool.name!r}")
        if tool.name in found:
            raise ToolRegistryError(
                f"two installed tools are named {tool.name!r}: {origin[tool.name]} and {_origin(point)}; uninstall one"
            )
        found[tool.name] = tool
        origin[tool.name] = _origin(point)
    return found


class ToolRegistry:
    """The tools this process has installed (and enabled with HASHGUARD_TOOLS), in a stable order."""

    def __init__(self, tools: dict[str, HashTool]) -> None:
        self._tools = dict(sorted(tools.items()))

    @classmethod
    def load(cls, enabled: Sequence[str] = ()) -> ToolRegistry:
        """Discover installed tools and keep ``enabled`` ones (all when empty)."""
        tools = discover()
        missing = [name for name in enabled if name not in tools]
        if missing:
            raise ToolRegistryError(f"HASHGUARD_TOOLS names tools that are not installed: {', '.join(missing)}")
        return cls({n: t for n, t in tools.items() if not enabled or n in enabled})

    def get(self, name: str) -> HashTool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name, self.names()) from None

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[HashTool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


def describe(tool: HashTool) -> dict[str, Any]:
    """A tool's declared interface as plain data (CLI, admin API): nothing about any list."""
    return {
        "name": tool.name,
        "version": tool.version,
        "kind": tool.kind.value,
        "bits": tool.bits,
        "default_threshold": tool.default_threshold,
        "threshold": tool.threshold(),
        "index": tool.index_kind().value,
        "media_types": sorted(tool.media_types),
        "description": tool.description,
        "implementation": f"{type(tool).__module__}:{type(tool).__qualname__}",
    }
