from __future__ import annotations

import pytest

from detector.tools.cryptographic import Md5Tool
from hashsets.errors import InvalidListFile
from hashsets.parse import MAX_REPORTED_PROBLEMS, parse_lines

MD5 = Md5Tool()
H1, H2 = "0" * 31 + "1", "0" * 31 + "2"


def parse(text: str) -> list[tuple[int, str, str, str | None]]:
    return [(e.line, e.entry_id, e.value.hex(), e.category) for e in parse_lines(text.splitlines(keepends=True), MD5.parse_hex)]


def test_plain_text_with_comments_blank_lines_bom_and_crlf() -> None:
    assert parse(f"\ufeff# list\r\n\r\n{H1}\r\n{H2.upper()}\r\n") == [(3, "1", H1, None), (4, "2", H2, None)]


def test_csv_and_tsv_with_columns_in_any_order() -> None:
    assert parse(f"category,hash,id\nA1,{H1},x\n,{H2},y\n") == [(2, "x", H1, "A1"), (3, "y", H2, None)]
    assert parse(f"hash\tid\n{H1}\tx\n") == [(2, "x", H1, None)]
    assert parse(f"HASH\n{H1}\n") == [(2, "1", H1, None)]


def test_problems_are_capped_but_counted() -> None:
    text = "\n".join(["bad"] * (MAX_REPORTED_PROBLEMS + 5))
    with pytest.raises(InvalidListFile) as caught:
        parse(text)
    assert caught.value.total == MAX_REPORTED_PROBLEMS + 5
    assert len(caught.value.problems) == MAX_REPORTED_PROBLEMS
    assert "and 5 more" in caught.value.message


def test_empty_id_is_refused() -> None:
    with pytest.raises(InvalidListFile, match="line 2: the id is empty"):
        parse(f"id,hash\n ,{H1}\n")
