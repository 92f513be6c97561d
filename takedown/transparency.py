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
