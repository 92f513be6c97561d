"""Benchmark results say only what their figures show, and record where they were measured."""

from __future__ import annotations

from pathlib import Path

from benchmarks.hashsets_import import TABLE_HEADER, append_row
from benchmarks.machine import commit
from benchmarks.robustness import EXPECTED, Measured, reading


def _measured(threshold: int, **recall: float) -> Measured:
    m = Measured(threshold=threshold, closest_distinct=90, p1_distinct=100.0)
    for edit in (*EXPECTED, "crop 5%", "rotate 2deg", "border 5%"):
        m.recall[edit] = recall.get(edit.replace(" ", "_").replace(".", "").replace("%", ""), 1.0)
        m.p90[edit], m.max[edit] = 2.0, 4
    return m


def test_reading_names_every_edit_a_tool_missed() -> None:
    measured = {
        "pdq": _measured(31, rescale_025=0.99),
        "phash": _measured(10),
        "dhash": _measured(10, gamma_14=0.99),
    }
    text = "\n".join(reading(measured, 2926))
    assert "pdq found 99% of rescale 0.25" in text
    assert "dhash found 99% of gamma 1.4" in text
    found_by_all = text.split("every tool found every copy of: ", 1)[1].split(". ", 1)[0]
    assert "gamma 1.4" not in found_by_all
    assert "rescale 0.25" not in found_by_all
    assert "gamma 0.7" in found_by_all


def test_import_rows_stay_inside_the_table(tmp_path: Path) -> None:
    results = tmp_path / "import.md"
    results.write_text("# title\n\nsome prose\n")
    append_row(results, ["a"] * 7)
    append_row(results, ["b"] * 7)
    row_a, row_b = ("| " + " | ".join([cell] * 7) + " |\n" for cell in "ab")
    assert results.read_text() == "# title\n\nsome prose\n\n" + TABLE_HEADER + row_a + row_b


def test_the_commit_is_recorded() -> None:
    recorded = commit()
    assert len(recorded.split()[0]) == 40 or recorded.startswith("unknown")
