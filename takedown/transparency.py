"""Transparency figures from the case records (domain notes §7; DSA Art 15 and 24, Reg. 2021/1232).
Pure: shapes the rows ``takedown.transparency_store.transparency_report`` reads into one report.

The figures come from tickets and their decisions only — which survive the evidence purge — so a
report for a past period can be recomputed after its evidence is gone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionRow:
    to_state: str
    action: str | None
    ground: str | None
    automated_detection: bool
    automated_decision: bool
    source: str
    reported_to: str | None
    n: int


@dataclass(frozen=True, kw_only=True, slots=True)
class AppealRow:
    outcome: str
    n: int
    median_s: float | None


def report(
    *,
    start: datetime,
    end: datetime,
    notices: Mapping[str, int],
    decisions: Sequence[DecisionRow],
    median_to_action_s: Mapping[str, float],
    appeals: Sequence[AppealRow],
) -> dict[str, Any]:
    actions: dict[str, int] = defaultdict(int)
    automated: dict[str, int] = defaultdict(int)
    by_source: dict[str, int] = defaultdict(int)
    reports: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    overturned_automated = 0
    for row in decisions:
        counts[row.to_state] += row.n
        if row.to_state == "actioned":
            actions[row.action or "unknown"] += row.n
            by_source[row.source] += row.n
            automated["automated_detection"] += row.n if row.automated_detection else 0
            automated["automated_decision"] += row.n if row.automated_decision else 0
        elif row.to_state == "reported":
            reports[row.reported_to or "unknown"] += row.n
        if row.to_state in ("dismissed", "reinstated") and row.automated_detection:
            overturned_automated += row.n
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "notices_received": dict(sorted(notices.items())),
        "actions_taken": {"by_action": dict(sorted(actions.items())), "by_source": dict(sorted(by_source.items()))},
        "automated_means": {
            "actions_with_automated_detection": automated["automated_detection"],
            "actions_decided_by_automated_means": automated["automated_decision"],
            "automated_detections_overturned_by_people": overturned_automated,
        },
        "median_seconds_to_action": {k: round(v, 3) for k, v in sorted(median_to_action_s.items())},
        "decisions": dict(sorted(counts.items())),
        "complaints": {
            "received": counts.get("appealed", 0),
            "decided": {a.outcome: a.n for a in appeals},
            "median_seconds_to_decide": {a.outcome: None if a.median_s is None else round(a.median_s, 3) for a in appeals},
            "reversals": counts.get("reinstated", 0),
        },
        "reports_filed": dict(sorted(reports.items())),
    }


# ---------------------------------------------------------------- the fuller figures (issue 12)

# hashguard handles one kind of illegal content: every notice and action is about child sexual
# abuse material, in the DSA's categories (domain notes §3.3).
CATEGORY = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
CATEGORY_SPECIFICATION = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"

ACCURACY_DEFINITION = (
    "Per tool and per list: reviewed = matches (tickets opened by a hash match) a person decided in the period, on "
    "first review or on appeal; wrong = those the person dismissed, or reinstated on appeal; error_rate = wrong / "
    "reviewed; precision = 1 - error_rate. A ticket matched by several tools or lists counts for each. Matches actioned "
    "automatically and never reviewed are not counted: they are neither confirmed nor refuted."
)


@dataclass(frozen=True, kw_only=True, slots=True)
class EuBasis:
    """The EU legal basis for voluntary detection as this deployment records it."""

    serves_eu: bool
    basis: str | None
    halted: str | None  # why no tool scans, or None


@dataclass(frozen=True, kw_only=True, slots=True)
class Context:
    """What the figures say about the deployment rather than count from the records."""

    eu: EuBasis | None = None
    retention_days: int | None = None
    appeal_window_days: int | None = None
    lists_in_force: Sequence[Mapping[str, Any]] | None = None  # from the lists' own context, via the root


@dataclass(frozen=True, kw_only=True, slots=True)
class FigureRows:
    notices: Sequence[Mapping[str, Any]]  # source, content_type, n
    time_to_action: Sequence[Mapping[str, Any]]  # source, n, median_s, p90_s
    overdue: Mapping[str, int]  # source -> n
    precision: Sequence[Mapping[str, Any]]  # kind (tool|list), name, reviewed, wrong
    reports: Sequence[Mapping[str, Any]]  # hotline, n, median_s
    lists_matched: Sequence[Mapping[str, Any]]  # hashset, version, tickets
    appeals: Mapping[str, int]  # appealed|reinstated|upheld -> n


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def accuracy(reviewed: int, wrong: int) -> dict[str, Any]:
    """One tool's or list's measured accuracy: counts, error rate and precision (None when nothing was reviewed)."""
    rate = _share(wrong, reviewed)
    return {
        "reviewed": reviewed,
        "wrong": wrong,
        "error_rate": rate,
        "precision": None if rate is None else round(1 - rate, 6),
    }


def figures(*, rows: FigureRows, decisions: Sequence[DecisionRow], context: Context) -> dict[str, Any]:
    """The figures auditors and regulators ask for (domain notes §7), added beside ``report``'s."""
    by_source: dict[str, int] = defaultdict(int)
    for n in rows.notices:
        by_source[n["source"]] += int(n["n"])
    by_type_ground: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_ground: dict[str, int] = defaultdict(int)
    total = detected = decided = 0
    own_initiative: dict[str, int] = defaultdict(int)
    per_source: dict[str, dict[str, Any]] = {}
    for d in decisions:
        if d.to_state != "actioned":
            continue
        ground = d.ground or "illegal_content"
        src = per_source.setdefault(d.source, {"total": 0, "automated_detection": 0, "automated_decision": 0, "by_ground": {}})
        src["total"] += d.n
        src["automated_detection"] += d.n if d.automated_detection else 0
        src["automated_decision"] += d.n if d.automated_decision else 0
        src["by_ground"][ground] = src["by_ground"].get(ground, 0) + d.n
        by_type_ground[d.action or "unknown"][ground] += d.n
        by_ground[ground] += d.n
        total += d.n
        detected += d.n if d.automated_detection else 0
        decided += d.n if d.automated_decision else 0
        if d.source == "hash_match":
            own_initiative[d.action or "unknown"] += d.n
    tools = {r["name"]: accuracy(int(r["reviewed"]), int(r["wrong"])) for r in rows.precision if r["kind"] == "tool"}
    lists = {r["name"]: accuracy(int(r["reviewed"]), int(r["wrong"])) for r in rows.precision if r["kind"] == "list"}
    all_reviewed = sum(a["reviewed"] for a in tools.values())
    all_wrong = sum(a["wrong"] for a in tools.values())
    out: dict[str, Any] = {
        "notices": {
            "by_source": dict(sorted(by_source.items())),
            "trusted_flagger": by_source.get("trusted_flagger", 0),
            "by_source_and_category": [
                {
                    "source": n["source"],
                    "category": CATEGORY,
                    "category_specification": CATEGORY_SPECIFICATION,
                    "content_type": n["content_type"],
                    "n": int(n["n"]),
                }
                for n in rows.notices
            ],
        },
        "actions": {
            "total": total,
            "by_type_and_ground": {a: dict(sorted(g.items())) for a, g in sorted(by_type_ground.items())},
            "by_ground": dict(sorted(by_ground.items())),
            "own_initiative_by_type": dict(sorted(own_initiative.items())),
            "by_source": {k: {**v, "by_ground": dict(sorted(v["by_ground"].items()))} for k, v in sorted(per_source.items())},
            "automated_detection": detected,
            "automated_decision": decided,
            "automated_share": {"detection": _share(detected, total), "decision": _share(decided, total)},
        },
        "time_to_action_seconds": {
            r["source"]: {"n": int(r["n"]), "median": _seconds(r["median_s"]), "p90": _seconds(r["p90_s"])}
            for r in rows.time_to_action
        },
        # As the report is made, not in the period: the backlog right now.
        "overdue_tickets": {"total": sum(rows.overdue.values()), "by_source": dict(sorted(rows.overdue.items()))},
        "appeals": {
            "received": rows.appeals.get("appealed", 0),
            "decided": rows.appeals.get("reinstated", 0) + rows.appeals.get("upheld", 0),
            "reversed": rows.appeals.get("reinstated", 0),
            "upheld": rows.appeals.get("upheld", 0),
        },
        "accuracy": {
            "definition": ACCURACY_DEFINITION,
            "overall": accuracy(all_reviewed, all_wrong),
            "by_tool": dict(sorted(tools.items())),
            "by_list": dict(sorted(lists.items())),
        },
        "reports": {
            "by_hotline": {
                r["hotline"] or "unknown": {"filed": int(r["n"]), "median_seconds_match_to_report": _seconds(r["median_s"])}
                for r in rows.reports
            },
            "total": sum(int(r["n"]) for r in rows.reports),
        },
        "lists": {
            "matched": [
                {"hashset": r["hashset"], "version": int(r["version"]), "tickets": int(r["tickets"])} for r in rows.lists_matched
            ],
            "in_force": None if context.lists_in_force is None else [dict(v) for v in context.lists_in_force],
        },
    }
    if context.eu is not None:
        out["eu_voluntary_detection"] = {
            "serves_eu": context.eu.serves_eu,
            "legal_basis": context.eu.basis,
            "detection_halted": context.eu.halted is not None,
            "detail": context.eu.halted
            or (
                f"voluntary detection runs under the recorded basis: {context.eu.basis}"
                if context.eu.basis
                else "the deployment serves no EU jurisdiction"
            ),
        }
    if context.retention_days is not None:
        out["retention"] = {"evidence_days": context.retention_days, "appeal_window_days": context.appeal_window_days}
    return out
