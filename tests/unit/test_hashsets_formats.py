"""List formats, deltas and classifications; the column-at-a-time path agrees with the line path."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.tools.pdq import PdqTool
from hashsets.errors import InvalidListFile
from hashsets.parse import ListFormat, Op, Scheme, parse_blocks, parse_lines

PDQ = PdqTool()


def h(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def parse(text: str, **kwargs: object) -> list[tuple[int, str, str, str | None, str | None, str]]:
    return [
        (e.line, e.entry_id, e.value.hex(), e.category, e.scheme, e.op)
        for e in parse_lines(text.splitlines(keepends=True), PDQ.parse_hex, **kwargs)  # type: ignore[arg-type]
    ]


def test_json_lines() -> None:
    text = json.dumps({"id": "x", "hash": h(1), "category": "B"}) + "\n" + json.dumps({"hash": h(2)}) + "\n"
    assert parse(text) == [(1, "x", h(1), "B", Scheme.IWF, Op.ADD), (2, "2", h(2), None, None, Op.ADD)]
    with pytest.raises(InvalidListFile) as caught:
        parse('{"id": "x"}\n[1]\n{"hash": 5}\n{bad\n')
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 1", "line 2", "line 3", "line 4"]


def test_delta_ops_in_csv_and_plain_text() -> None:
    text = f"op,id,hash\nadd,n1,{h(1)}\nretract,old,\n-,old2,{h(2)}\n"
    assert parse(text, allow_retractions=True) == [
        (2, "n1", h(1), None, None, Op.ADD),
        (3, "old", "", None, None, Op.RETRACT),
        (4, "old2", h(2), None, None, Op.RETRACT),
    ]
    assert parse(f"{h(1)}\n-{h(2)}\n", allow_retractions=True) == [
        (1, "1", h(1), None, None, Op.ADD),
        (2, "", h(2), None, None, Op.RETRACT),
    ]
    with pytest.raises(InvalidListFile, match="line 3: a retraction in a full list"):
        parse(text)


def test_classification_is_inferred_or_checked_against_the_declared_scheme() -> None:
    text = f"id,hash,category\na,{h(1)},a1\nb,{h(2)},baseline\nc,{h(3)},C\n"
    assert [(c, s) for *_, c, s, _ in parse(text)] == [("A1", Scheme.NCMEC), ("baseline", Scheme.INTERPOL), ("C", Scheme.IWF)]
    with pytest.raises(InvalidListFile, match="line 2: 'a1' is not a iwf category"):
        parse(text, scheme=Scheme.IWF)
    with pytest.raises(InvalidListFile, match="unknown classification 'Z9'"):
        parse(f"id,hash,category\na,{h(1)},Z9\n")


def test_a_bad_line_deep_in_a_fast_block_is_named_and_not_echoed() -> None:
    lines = [f"e{i},{h(i)}\n" for i in range(25_000)]
    lines[17_000] = f"e17000,{h(17_000)[:-2]}zz\n"
    with pytest.raises(InvalidListFile) as caught:
        list(parse_blocks(["id,hash\n", *lines], PDQ.parse_hex, width=32))
    assert caught.value.problems == [
        "line 17002: not a valid pdq hash: expected 64 hexadecimal digits, got 64 characters including non-hex characters"
    ]
    assert h(17_000)[:-2] not in caught.value.message


_cell = st.sampled_from([h(1), h(2).upper(), " " + h(3), "0x" + h(4), h(5)[:10], "zz", "", h(6)])
_row = st.tuples(
    st.sampled_from(["", "#c", "   "]) | st.none(),
    _cell,
    st.sampled_from(["a", "b", "", "x y", '"q"']),
    st.sampled_from(["", "A", "B2", "baseline", "nope"]),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, max_size=40), fmt=st.sampled_from([ListFormat.CSV, ListFormat.PLAIN]))
def test_the_fast_path_gives_exactly_what_the_line_path_gives(
    rows: list[tuple[str | None, str, str, str]], fmt: ListFormat
) -> None:
    if fmt is ListFormat.CSV:
        text = ["id,hash,category\n"] + [
            (f"{extra}\n" if extra is not None else f"{id_}{i},{value},{cat}\n")
            for i, (extra, value, id_, cat) in enumerate(rows)
        ]
    else:
        text = [(f"{extra}\n" if extra is not None else f"{value}\n") for extra, value, _, _ in rows]

    def run(width: int | None) -> tuple[list[tuple[object, ...]], str | None]:
        out: list[tuple[object, ...]] = []
        try:
            for block in parse_blocks(text, PDQ.parse_hex, width=width, format=fmt):
                out.extend((e.line, e.entry_id, e.value, e.category, e.scheme, e.op) for e in block.entries())
        except InvalidListFile as exc:
            return out, exc.message
        return out, None

    import hashsets.parse as module

    previous = module._BLOCK_LINES
    module._BLOCK_LINES = 7  # small blocks so a few rows span several
    try:
        assert run(32) == run(None)
    finally:
        module._BLOCK_LINES = previous
