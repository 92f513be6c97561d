"""Finding detection tools: every tool, built-in or not, comes through the ``hashguard.tools`` entry points."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points

from detector.errors import UnknownTool
from detector.tools.base import HashTool

ENTRY_POINT_GROUP = "hashguard.tools"


class ToolRegistryError(RuntimeError):
    """The installed detection tools are inconsistent."""


def discover(points: Iterable[EntryPoint] | None = None) -> dict[str, HashTool]:
    """Load and instantiate every registered tool. Duplicate names are an error, not a silent override."""
    found: dict[str, HashTool] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP) if points is None else points:
        cls = point.load()
        if not (isinstance(cls, type) and issubclass(cls, HashTool)):
            raise ToolRegistryError(f"entry point {point.name!r} ({point.value}) is not a HashTool subclass")
        tool = cls()
        if tool.name != point.name:
            raise ToolRegistryError(f"entry point {point.name!r} loads a tool named {tool.name!r}")
        if tool.name in found:
            raise ToolRegistryError(f"two installed tools are named {tool.name!r}")
        found[tool.name] = tool
    return found


class ToolRegistry:
    """The tools this process uses, in a stable order."""

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

    def __iter__(self) -> Iterator[HashTool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
