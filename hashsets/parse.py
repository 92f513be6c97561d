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
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice

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
        # A retraction with an empty id names its entry by the hash alone.
        explicit_id = entry_id is not None and (op is Op.ADD or bool(entry_id.strip()))
        entry_id = entry_id.strip() if explicit_id and entry_id is not None else str(self.ordinal)
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
            scheme = parse_scheme(scheme_text) if scheme_text and scheme_text.strip() else self.scheme
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


def _clean(raw: str, number: int) -> str:
    line = raw.rstrip("\r\n")
    return line.lstrip("\ufeff") if number == 1 else line


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and stripped[0] != "#"


def sniff_format(first_line: str) -> ListFormat:
    """Guess the format from the first content line: ``{`` is JSON Lines, a header naming ``hash`` is CSV/TSV."""
    if first_line.lstrip().startswith("{"):
        return ListFormat.JSONL
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    cells = [c.strip().lower() for c in next(csv.reader([first_line], delimiter=delimiter))]
    if "hash" in cells or ("id" in cells and "op" in cells):
        return ListFormat.TSV if delimiter == "\t" else ListFormat.CSV
    return ListFormat.PLAIN


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryBlock:
    """Consecutive entries in columns: what the importer hands to COPY without a Python object per entry."""

    lines: list[int]
    entry_ids: list[str]
    values: list[bytes]
    categories: list[str | None]
    schemes: list[Scheme | None]
    ops: list[Op] | None = None  # None: every entry is an addition

    def __len__(self) -> int:
        return len(self.lines)

    def entries(self) -> Iterator[ListEntry]:
        ops = self.ops or [Op.ADD] * len(self.lines)
        for line, entry_id, value, category, scheme, op in zip(
            self.lines, self.entry_ids, self.values, self.categories, self.schemes, ops, strict=True
        ):
            yield ListEntry(line=line, entry_id=entry_id, value=value, category=category, scheme=scheme, op=op)

    @classmethod
    def of(cls, entries: list[ListEntry]) -> EntryBlock:
        retracts = any(e.op is Op.RETRACT for e in entries)
        return cls(
            lines=[e.line for e in entries],
            entry_ids=[e.entry_id for e in entries],
            values=[e.value for e in entries],
            categories=[e.category for e in entries],
            schemes=[e.scheme for e in entries],
            ops=[e.op for e in entries] if retracts else None,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Columns:
    delimiter: str
    width: int
    hash_at: int | None
    id_at: int | None
    category_at: int | None
    scheme_at: int | None
    op_at: int | None


def _header(number: int, line: str, delimiter: str, reader: _Reader) -> _Columns | None:
    header = [c.strip().lower() for c in next(csv.reader([line], delimiter=delimiter))]
    columns = {name: i for i, name in enumerate(header)}
    if len(columns) != len(header):
        reader.problems.add(number, "the header names a column twice")
        return None
    if "hash" not in columns and "id" not in columns:
        reader.problems.add(number, "the header has no 'hash' column")
        return None
    return _Columns(
        delimiter=delimiter,
        width=len(header),
        hash_at=columns.get("hash"),
        id_at=columns.get("id"),
        category_at=columns.get("category"),
        scheme_at=columns.get("scheme"),
        op_at=columns.get("op"),
    )


def _plain_line(reader: _Reader, number: int, line: str) -> ListEntry | None:
    text = line.strip()
    op = None
    if text[0] in "+-":
        op, text = text[0], text[1:]
    return reader.entry(number, text, None, op_text=op)


def _delimited_line(reader: _Reader, columns: _Columns, number: int, line: str) -> ListEntry | None:
    cells = next(csv.reader([line], delimiter=columns.delimiter))
    if len(cells) != columns.width:
        reader.problems.add(number, f"expected {columns.width} columns, found {len(cells)}")
        return None

    def cell(at: int | None) -> str | None:
        return cells[at] if at is not None else None

    return reader.entry(
        number,
        cell(columns.hash_at),
        cell(columns.id_at),
        cell(columns.category_at),
        cell(columns.scheme_at),
        cell(columns.op_at),
    )


def _jsonl_line(reader: _Reader, number: int, line: str) -> ListEntry | None:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        # json's messages give positions, never the text around them.
        reader.problems.add(number, f"not valid JSON ({exc.__class__.__name__}: {str(exc).split(':')[0]})")
        return None
    if not isinstance(obj, dict):
        reader.problems.add(number, "expected a JSON object")
        return None
    fields: list[str | None] = []
    for key in ("hash", "id", "category", "scheme", "op"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            reader.problems.add(number, f"{key!r} must be a string")
            return None
        fields.append(value)
    if fields[0] is None and (fields[4] or "add").strip().lower() in ("add", "+"):
        reader.problems.add(number, "the hash is missing")
        return None
    return reader.entry(number, fields[0], fields[1], fields[2], fields[3], fields[4])


_HEX_TEXT = re.compile(r"[0-9a-fA-F]*")


class _Fast:
    """The common case, a block of clean lines, read by one regular expression per block (several
    times faster than line by line). A block with anything unusual in it (a comment, a blank line,
    quoting, spaces around a value, a malformed hash) does not match line for line, and goes line by
    line instead, which names its problems."""

    def __init__(self, reader: _Reader, width: int, header: list[str] | None, delimiter: str) -> None:
        self.reader = reader
        self.width = width
        self._categories: dict[tuple[str, str | None], tuple[str | None, Scheme | None]] = {}
        hex_ = f"([0-9a-fA-F]{{{2 * width}}})"
        if header is None:  # plain text: additions only, one hash per line
            self.captured: list[str] = ["hash"]
            self.pattern = re.compile(f"^{hex_}\\r?$", re.MULTILINE)
            return
        d = re.escape(delimiter)
        cell = f'[^{d}"\n\r]*'
        parts = []
        self.captured = []
        for name in header:
            if name == "hash":
                parts.append(hex_)
            elif name == "id":  # no blanks around it: those lines go the careful way (which strips)
                parts.append(rf'([^{d}"\s](?:{cell}[^{d}"\s])?)')
            elif name in ("category", "scheme", "op"):
                parts.append(f"({cell})")
            else:
                parts.append(cell)
                continue
            self.captured.append(name)
        self.pattern = re.compile("^" + d.join(parts) + "\\r?$", re.MULTILINE)

    def _classify(self, categories: list[str], schemes: list[str] | None) -> tuple[list[str | None], list[Scheme | None]] | None:
        cache = self._categories
        pairs = list(zip(categories, schemes, strict=True)) if schemes is not None else [(c, None) for c in categories]
        for key in set(pairs):
            if key not in cache:
                try:
                    scheme = parse_scheme(key[1]) if key[1] and key[1].strip() else self.reader.scheme
                    cache[key] = normalise_category(key[0], scheme)
                except ValueError:
                    return None
        done = [cache[p] for p in pairs]
        return [c for c, _ in done], [s for _, s in done]

    def block(self, block: list[tuple[int, str]]) -> EntryBlock | None:
        n = len(block)
        found = self.pattern.findall("\n".join([raw for _, raw in block]))
        if len(found) != n:
            return None
        if len(self.captured) == 1:
            columns: dict[str, list[str]] = {self.captured[0]: found}
        else:
            columns = {name: [row[i] for row in found] for i, name in enumerate(self.captured)}
        if "hash" not in columns:
            return None
        hashes = columns["hash"]
        raw = bytes.fromhex("".join(hashes))
        w = self.width
        values = [raw[i : i + w] for i in range(0, len(raw), w)]
        first = block[0][0]
        ordinal = self.reader.ordinal
        ids = columns.get("id")
        if ids is not None:
            longest = max(map(len, ids))
            if longest > MAX_ID_LENGTH:
                return None
            # An id that is the hash would leak it; only ids at least that long need a look.
            if longest >= 2 * w and any(
                len(i) >= 2 * w and i.lower().removeprefix("0x") == h.lower() for i, h in zip(ids, hashes, strict=True)
            ):
                return None
        else:
            ids = list(map(str, range(ordinal + 1, ordinal + n + 1)))
        if "category" in columns:
            classified = self._classify(columns["category"], columns.get("scheme"))
            if classified is None:
                return None
            categories, schemes = classified
        else:
            categories, schemes = [None] * n, [None] * n
        ops: list[Op] | None = None
        if "op" in columns:
            texts_ops = [o.strip().lower() for o in columns["op"]]
            if any(o not in _OPS for o in set(texts_ops)):
                return None
            ops = [_OPS[o] for o in texts_ops]
            if Op.RETRACT in ops:
                if not self.reader.allow_retractions:
                    return None
            else:
                ops = None
        self.reader.ordinal += n
        return EntryBlock(
            lines=list(range(first, first + n)), entry_ids=ids, values=values, categories=categories, schemes=schemes, ops=ops
        )


_BLOCK_LINES = 10_000


def parse_blocks(
    lines: Iterable[str],
    parse_hash: Callable[[str], bytes],
    *,
    width: int | None = None,
    format: ListFormat | None = None,
    scheme: Scheme | None = None,
    allow_retractions: bool = False,
) -> Iterator[EntryBlock]:
    """Yield entries in blocks; at the end, raise ``InvalidListFile`` if any line was bad.

    The caller writes entries as they come (bounded memory) inside a transaction it rolls back
    on the error, so a bad line anywhere means nothing of the file is kept.
    ``parse_hash`` is the tool's validator; it raises ``ValueError`` with a value-free message.
    ``width`` (the hash's bytes) enables the column-at-a-time path for plain hex hashes; leave it
    None for a tool whose ``parse_hash`` does more than read hex. ``format`` None: sniffed.
    """
    reader = _Reader(parse_hash, scheme, allow_retractions)
    numbered = enumerate(lines, start=1)
    first: tuple[int, str] | None = None
    for number, raw in numbered:
        line = _clean(raw, number)
        if _is_content(line):
            first = (number, line)
            break
    if first is not None:
        chosen = format or sniff_format(first[1])
        columns: _Columns | None = None
        pending: list[tuple[int, str]] = []
        handle: Callable[[int, str], ListEntry | None]
        header: list[str] | None = None
        if chosen in (ListFormat.CSV, ListFormat.TSV):
            columns = _header(*first, "\t" if chosen is ListFormat.TSV else ",", reader)
            header = [c.strip().lower() for c in next(csv.reader([first[1]], delimiter=columns.delimiter))] if columns else None
            found = columns
            handle = (lambda n, t: _delimited_line(reader, found, n, t)) if found is not None else (lambda n, t: None)
        elif chosen is ListFormat.JSONL:
            handle = lambda n, t: _jsonl_line(reader, n, t)  # noqa: E731
            pending = [first]
        else:
            handle = lambda n, t: _plain_line(reader, n, t)  # noqa: E731
            pending = [first]
        fast = (
            _Fast(reader, width, header, columns.delimiter if columns is not None else ",")
            if width is not None and chosen is not ListFormat.JSONL and (columns is not None or chosen is ListFormat.PLAIN)
            else None
        )

        def slow(block: list[tuple[int, str]]) -> EntryBlock:
            found: list[ListEntry] = []
            for number, raw in block:
                line = _clean(raw, number)
                if _is_content(line) and (entry := handle(number, line)) is not None:
                    found.append(entry)
            return EntryBlock.of(found)

        if (chosen is ListFormat.CSV or chosen is ListFormat.TSV) and columns is None:
            for _ in numbered:  # a bad header: the rest cannot be read, but the digest needs every byte
                pass
        else:
            if pending:
                yield slow(pending)
            while block := list(islice(numbered, _BLOCK_LINES)):
                result = fast.block(block) if fast is not None else None
                result = result if result is not None else slow(block)
                if len(result):
                    yield result
    if reader.problems.total:
        raise InvalidListFile(reader.problems.shown, reader.problems.total)


def parse_lines(
    lines: Iterable[str],
    parse_hash: Callable[[str], bytes],
    *,
    width: int | None = None,
    format: ListFormat | None = None,
    scheme: Scheme | None = None,
    allow_retractions: bool = False,
) -> Iterator[ListEntry]:
    """``parse_blocks`` one entry at a time (small lists, tests)."""
    for block in parse_blocks(lines, parse_hash, width=width, format=format, scheme=scheme, allow_retractions=allow_retractions):
        yield from block.entries()
