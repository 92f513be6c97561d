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


def _service_table(text: str) -> list[list[str]]:
    from benchmarks.service import TABLE_HEADER

    lines = text.splitlines()
    start = lines.index(TABLE_HEADER)
    assert lines[start + 1] == "|---|---|---|---|---|"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _assert_service_shape(text: str) -> None:
    from benchmarks.service import MEASURES

    assert text.startswith("# ") and "\n## Run: " in text
    rows = _service_table(text)
    assert [row[0] for row in rows] == list(MEASURES)
    assert all(len(row) == 5 for row in rows), rows
    assert {row[4] for row in rows} <= {"yes", "no", "—"}
    # A row with a target says whether it was met; a row without one does not pretend to.
    assert all((row[3] == "—") == (row[4] == "—") for row in rows), rows
    missed = [row[0] for row in rows if row[4] == "no"]
    bounds = text.split("What bounds each missed target", 1)[1].split("###", 1)[0]
    assert len([line for line in bounds.splitlines() if line.startswith("- ")]) >= len(missed) or not missed
    assert "| phase | seconds | load at start | load at end |" in text


def test_the_committed_service_results_have_the_table_shape() -> None:
    _assert_service_shape((Path(__file__).parents[2] / "benchmarks" / "results" / "service.md").read_text())


def test_the_service_report_marks_missed_targets_and_unsupported_workers() -> None:
    from benchmarks.service import NOT_SUPPORTED, Run, report, table_rows

    latency = {"requests": 100, "errors": 0, "rate": 800.0, "p50_ms": 1.0, "p99_ms": 4.0, "max_ms": 5.0, "seconds": 10.0}
    scan = {"ok": 100, "seconds": 10, "scans_per_s": 10.0, "p50_ms": 50.0, "p99_ms": 90.0, "errors": {}}
    worker = {"ready_s": 3.0, "peak": 2**30, "steady": 2**29, "processes": 1, "index_file": 0, "scan": scan}
    run = Run(entries=1000, label="synthetic", workers_list=[1, 2])
    run.figures = {
        "import_s": 1.0,
        "index_bytes": 2**29,
        "cold": {"ready_s": 9.0, "peak": 2**30, "steady": 2**29},
        "w1": worker,
        "w2": None,
        "delta": {
            "import_cli_s": 1.0,
            "commit_from": "row visible",
            "commit_after_start_s": 0.5,
            "matchable_s": 1.5,
            "matchable_from_cli_s": 1.0,
            "workers_seen": 0,
            "before": latency,
            "during": {**latency, "p99_ms": 40.0},
            "after": latency,
            "steady_mem": 2**29,
            "peak_mem": 2**29,
        },
        "batch": {"none": [0.3, 0.3], "half": [0.5, 0.5]},
        "per_million": [("pdq", 96_000_000, 0.2)],
    }
    rows, bounds = table_rows(run)
    verdict = {row[0]: row[4] for row in rows}
    assert verdict["start to /readyz, warm"] == "yes"
    assert verdict["delta of 10,000 matchable in every worker, after its commit"] == "yes"
    assert verdict["single lookup during the delta: rate, p50 / p99"] == "no"  # 40 ms against 2 x 4 ms
    assert verdict["memory during the delta vs steady"] == "yes"
    assert verdict["/v1/scan 1080p JPEG, 2 workers"] == "no"
    assert NOT_SUPPORTED in dict((row[0], row[2]) for row in rows)["/v1/scan 1080p JPEG, 2 workers"]
    assert any(line.startswith("- Lookups during the delta") for line in bounds)
    assert not any(line.startswith("- Warm start") for line in bounds)
    _assert_service_shape(report(run, command="python -m benchmarks.service", machine="test", run_s=60))
