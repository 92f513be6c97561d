"""Reading hash list files: CSV with a header, or plain text with one hex hash per line.

Pure code: it turns lines into entries and problems. It never echoes a hash value back,
because list entries are confidential even when malformed.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hashsets.errors import InvalidListFile

# How many problems an import reports in full before it only counts the rest.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class ListEntry:
    line: int
    entry_id: str
    value: bytes
    category: str | None


class _Problems:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            self.shown.append(f"line {line}: {message}")


def _is_csv_header(line: str) -> bool:
    cells = [c.strip().lower() for c in next(csv.reader([line], dialect=_dialect(line)))]
    return "hash" in cells


def _dialect(line: str) -> type[csv.Dialect]:
    return csv.excel_tab if "\t" in line and "," not in line else csv.excel


def parse_lines(lines: Iterable[str], parse_hash: Callable[[str], bytes]) -> Iterator[ListEntry]:
    """Yield entries; at the end, raise ``InvalidListFile`` if any line was bad.

    The caller writes entries as they come (bounded memory) inside a transaction it rolls back
    on the error, so a bad line anywhere means nothing of the file is kept.
    ``parse_hash`` is the tool's validator; it raises ``ValueError`` with a value-free message.
    """
    problems = _Problems()
    seen_ids: set[str] = set()
    numbered = enumerate(lines, start=1)
    header: list[str] | None = None
    columns: dict[str, int] = {}
    dialect: type[csv.Dialect] = csv.excel
    ordinal = 0

    for number, raw in numbered:
        line = raw.rstrip("\r\n")
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if header is None and not columns and ordinal == 0 and _is_csv_header(line):
            dialect = _dialect(line)
            header = [c.strip().lower() for c in next(csv.reader([line], dialect=dialect))]
            columns = {name: i for i, name in enumerate(header)}
            if len(columns) != len(header):
                problems.add(number, "the header names a column twice")
            continue
        ordinal += 1
        if header is not None:
            cells = next(csv.reader([line], dialect=dialect))
            if len(cells) != len(header):
                problems.add(number, f"expected {len(header)} columns, found {len(cells)}")
                continue
            hash_text = cells[columns["hash"]]
            entry_id = cells[columns["id"]].strip() if "id" in columns else str(ordinal)
            category = (cells[columns["category"]].strip() or None) if "category" in columns else None
        else:
            hash_text, entry_id, category = line, str(ordinal), None
        if not entry_id:
            problems.add(number, "the id is empty")
            continue
        try:
            value = parse_hash(hash_text)
        except ValueError as exc:
            problems.add(number, str(exc))
            continue
        if entry_id.lower().removeprefix("0x") == value.hex():
            # Entry ids are shown to platforms and reviewers; one that is the hash would leak it.
            problems.add(number, "the id repeats the hash value; ids are shown to platforms, hashes never are")
            continue
        if entry_id in seen_ids:
            problems.add(number, f"the id {entry_id!r} appears more than once")
            continue
        seen_ids.add(entry_id)
        yield ListEntry(line=number, entry_id=entry_id, value=value, category=category)

    if problems.total:
        raise InvalidListFile(problems.shown, problems.total)
