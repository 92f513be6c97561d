"""Reading hash list files: CSV or TSV with a header, JSON Lines, or plain text with one hex hash per line.

Pure code: it turns lines into entries and problems. It never echoes a hash value back,
because list entries are confidential even when malformed.

Delta files say per entry whether it is added or retracted: an ``op`` column (CSV/TSV) or key
(JSON Lines) holding ``add`` or ``retract`` (``+``/``-`` also accepted); plain text marks a
retraction with a leading ``-``. A retraction names the entry by ``id`` when the file has ids,
otherwise by its hash.

Duplicate entry ids are left to the database's unique index: checking them here would need
memory proportional to the list (10M ids), and the import must stream.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain

from hashsets.errors import InvalidListFile

# How many problems an import reports in full before it only counts the rest.
MAX_REPORTED_PROBLEMS = 20
MAX_ID_LENGTH = 256


class ListFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    PLAIN = "plain"


class Op(StrEnum):
    ADD = "add"
    RETRACT = "retract"


class Scheme(StrEnum):
    """The hotline classification scheme an entry's category comes from (mirrors ``classification_scheme``)."""

    IWF = "iwf"  # IWF categories A, B, C
    NCMEC = "ncmec"  # NCMEC-style A1, A2, B1, B2
    INTERPOL = "interpol"  # INTERPOL baseline


CATEGORIES: dict[Scheme, frozenset[str]] = {
    Scheme.IWF: frozenset({"A", "B", "C"}),
    Scheme.NCMEC: frozenset({"A1", "A2", "B1", "B2"}),
    Scheme.INTERPOL: frozenset({"baseline"}),
}
_INFERRED = {category: scheme for scheme, names in CATEGORIES.items() for category in names}
_OPS = {"add": Op.ADD, "+": Op.ADD, "": Op.ADD, "retract": Op.RETRACT, "remove": Op.RETRACT, "-": Op.RETRACT}


@dataclass(frozen=True, kw_only=True, slots=True)
class ListEntry:
    """One line of a list file. ``value`` is empty only for a retraction named by its id alone;
    ``entry_id`` is empty only for a retraction named by its hash alone."""

    line: int
    entry_id: str
    value: bytes
    category: str | None
    scheme: Scheme | None = None
    op: Op = Op.ADD


class _Problems:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            self.shown.append(f"line {line}: {message}")


def normalise_category(category: str | None, scheme: Scheme | None) -> tuple[str | None, Scheme | None]:
    """Check a category against its scheme (inferred from the value when the file names none).

    Raises ``ValueError`` with a message naming the category, which is not confidential.
    """
    if category is None or not category.strip():
        return None, None
    text = category.strip()
    text = "baseline" if text.lower() == "baseline" else text.upper()
    if scheme is None:
        inferred = _INFERRED.get(text)
        if inferred is None:
            raise ValueError(
                f"unknown classification {category.strip()!r}: expected IWF A/B/C, NCMEC A1/A2/B1/B2 or INTERPOL baseline"
            )
        return text, inferred
    if text not in CATEGORIES[scheme]:
        raise ValueError(f"{category.strip()!r} is not a {scheme.value} category ({', '.join(sorted(CATEGORIES[scheme]))})")
    return text, scheme


def parse_scheme(text: str | None) -> Scheme | None:
    if text is None or not text.strip() or text.strip().lower() == "none":
        return None
    try:
        return Scheme(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown classification scheme {text.strip()!r}: expected iwf, ncmec, interpol or none") from None


class _Reader:
    """Shared validation for every format: one entry per call, problems collected by line."""

    def __init__(self, parse_hash: Callable[[str], bytes], scheme: Scheme | None, allow_retractions: bool) -> None:
        self.parse_hash = parse_hash
        self.scheme = scheme
        self.allow_retractions = allow_retractions
        self.problems = _Problems()
        self.ordinal = 0

    def entry(
        self,
        number: int,
        hash_text: str | None,
        entry_id: str | None,
        category: str | None = None,
        scheme_text: str | None = None,
        op_text: str | None = None,
    ) -> ListEntry | None:
        self.ordinal += 1
        op = Op.ADD
        if op_text is not None:
            found = _OPS.get(op_text.strip().lower())
            if found is None:
                self.problems.add(number, f"unknown op {op_text.strip()[:20]!r}: expected add or retract")
                return None
            op = found
        if op is Op.RETRACT and not self.allow_retractions:
            self.problems.add(number, "a retraction in a full list; only a delta import may retract entries")
            return None
        explicit_id = entry_id is not None
        entry_id = entry_id.strip() if entry_id is not None else str(self.ordinal)
        if not entry_id:
            self.problems.add(number, "the id is empty")
            return None
        if len(entry_id) > MAX_ID_LENGTH:
            self.problems.add(number, f"the id is longer than {MAX_ID_LENGTH} characters")
            return None
        value = b""
        if hash_text is not None and (op is Op.ADD or hash_text.strip()):
            try:
                value = self.parse_hash(hash_text)
            except ValueError as exc:
                self.problems.add(number, str(exc))
                return None
        elif op is Op.ADD:
            self.problems.add(number, "the hash is missing")
            return None
        elif not explicit_id:
            self.problems.add(number, "a retraction needs the entry's id or its hash")
            return None
        if explicit_id and value and entry_id.lower().removeprefix("0x") == value.hex():
            # Entry ids are shown to platforms and reviewers; one that is the hash would leak it.
            self.problems.add(number, "the id repeats the hash value; ids are shown to platforms, hashes never are")
            return None
        try:
            scheme = parse_scheme(scheme_text) if scheme_text is not None else self.scheme
            category, scheme = normalise_category(category, scheme)
        except ValueError as exc:
            self.problems.add(number, str(exc))
            return None
        return ListEntry(
            line=number,
            entry_id=entry_id if explicit_id or op is Op.ADD else "",
            value=value,
            category=category,
            scheme=scheme,
            op=op,
        )


def _content(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Numbered lines without blank lines, ``#`` comments, the BOM and line ends."""
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if number == 1:
            line = line.lstrip("\ufeff")
        stripped = line.strip()
        if stripped and stripped[0] != "#":
            yield number, line


def sniff_format(first_line: str) -> ListFormat:
    """Guess the format from the first content line: ``{`` is JSON Lines, a header naming ``hash`` is CSV/TSV."""
    if first_line.lstrip().startswith("{"):
        return ListFormat.JSONL
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    cells = [c.strip().lower() for c in next(csv.reader([first_line], delimiter=delimiter))]
    if "hash" in cells or ("id" in cells and "op" in cells):
        return ListFormat.TSV if delimiter == "\t" else ListFormat.CSV
    return ListFormat.PLAIN


def _plain(content: Iterator[tuple[int, str]], reader: _Reader) -> Iterator[ListEntry]:
    for number, line in content:
        text = line.strip()
        op = None
        if text[0] in "+-":
            op, text = text[0], text[1:]
        entry = reader.entry(number, text, None, op_text=op)
        if entry is not None:
            yield entry


def _delimited(content: Iterator[tuple[int, str]], reader: _Reader, delimiter: str) -> Iterator[ListEntry]:
    current = 0

    def lines() -> Iterator[str]:
        nonlocal current
        for number, line in content:
            current = number
            yield line

    rows = csv.reader(lines(), delimiter=delimiter)
    header_number = 0
    header = [c.strip().lower() for c in next(rows, [])]
    header_number = current
    columns = {name: i for i, name in enumerate(header)}
    if len(columns) != len(header):
        reader.problems.add(header_number, "the header names a column twice")
        return
    if "hash" not in columns and "id" not in columns:
        reader.problems.add(header_number, "the header has no 'hash' column")
        return
    width = len(header)
    hash_at, id_at = columns.get("hash"), columns.get("id")
    category_at, scheme_at, op_at = columns.get("category"), columns.get("scheme"), columns.get("op")
    for cells in rows:
        if len(cells) != width:
            reader.problems.add(current, f"expected {width} columns, found {len(cells)}")
            continue
        entry = reader.entry(
            current,
            cells[hash_at] if hash_at is not None else None,
            cells[id_at] if id_at is not None else None,
            cells[category_at] if category_at is not None else None,
            cells[scheme_at] if scheme_at is not None else None,
            cells[op_at] if op_at is not None else None,
        )
        if entry is not None:
            yield entry


def _optional_text(obj: dict[str, object], key: str, number: int, reader: _Reader) -> tuple[bool, str | None]:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return True, value
    reader.problems.add(number, f"{key!r} must be a string")
    return False, None


def _jsonl(content: Iterator[tuple[int, str]], reader: _Reader) -> Iterator[ListEntry]:
    for number, line in content:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            # json's messages give positions, never the text around them.
            reader.problems.add(number, f"not valid JSON ({exc.__class__.__name__}: {str(exc).split(':')[0]})")
            continue
        if not isinstance(obj, dict):
            reader.problems.add(number, "expected a JSON object")
            continue
        fields: list[str | None] = []
        for key in ("hash", "id", "category", "scheme", "op"):
            ok, text = _optional_text(obj, key, number, reader)
            if not ok:
                break
            fields.append(text)
        else:
            if fields[0] is None and fields[4] in (None, "add", "+"):
                reader.problems.add(number, "the hash is missing")
                continue
            entry = reader.entry(number, fields[0], fields[1], fields[2], fields[3], fields[4])
            if entry is not None:
                yield entry


def parse_lines(
    lines: Iterable[str],
    parse_hash: Callable[[str], bytes],
    *,
    format: ListFormat | None = None,
    scheme: Scheme | None = None,
    allow_retractions: bool = False,
) -> Iterator[ListEntry]:
    """Yield entries; at the end, raise ``InvalidListFile`` if any line was bad.

    The caller writes entries as they come (bounded memory) inside a transaction it rolls back
    on the error, so a bad line anywhere means nothing of the file is kept.
    ``parse_hash`` is the tool's validator; it raises ``ValueError`` with a value-free message.
    ``format`` None means: sniff it from the first content line.
    """
    reader = _Reader(parse_hash, scheme, allow_retractions)
    content = _content(lines)
    first = next(content, None)
    if first is not None:
        chosen = format or sniff_format(first[1])
        rest = chain([first], content)
        if chosen is ListFormat.PLAIN:
            yield from _plain(rest, reader)
        elif chosen is ListFormat.JSONL:
            yield from _jsonl(rest, reader)
        else:
            yield from _delimited(rest, reader, "\t" if chosen is ListFormat.TSV else ",")
    if reader.problems.total:
        raise InvalidListFile(reader.problems.shown, reader.problems.total)
