"""The transparency figures as files: a flat CSV of every figure, the DSA Implementing Regulation
(EU) 2024/2835 quantitative template's sections 1.2-1.6, and the annual report on voluntary
detection in the shape of Reg. (EU) 2021/1232's reporting duty. Pure: the report dict in, text out.

The regulation's own column names were not read (domain notes §3.4, §9 item 2): the template CSV
has one row per quantity, ``section, quantity, breakdown, value, note``, with the quantities the
articles name, so a compliance team can map rows onto the Commission's spreadsheet. Quantities
hashguard does not record (orders to provide information, out-of-court disputes, Art 23
suspensions, human resources) appear with an empty value and a note saying so, never a made-up 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMATS = ("json", "csv", "dsa-2024-2835", "eu-2021-1232")

NOT_RECORDED = "not recorded by hashguard"

# Sources as the DSA's kinds of notice (domain notes §3.3 source_type).
_NOTICE_SOURCES = ("user_report", "trusted_flagger", "hotline")


def _write(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _flatten(f"{prefix}[{i}]", inner)
    else:
        yield prefix, value


def flat_csv(report: Mapping[str, Any]) -> str:
    """Every figure of the report as one ``figure,value`` row (dotted paths)."""
    return _write(("figure", "value"), _flatten("", report))


def _g(report: Mapping[str, Any], *path: str) -> Any:
    value: Any = report
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def dsa_2024_2835(report: Mapping[str, Any]) -> str:
    """Sections 1.2-1.6 of the 2024/2835 quantitative template, one quantity a row."""
    cat = "category=STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    rows: list[tuple[Any, ...]] = []
    period = _g(report, "period") or {}
    rows.append(("1.1", "reporting_period_start", "", period.get("from"), ""))
    rows.append(("1.1", "reporting_period_end", "", period.get("to"), ""))
    tenant = report.get("tenant")
    rows.append(("1.1", "scope", "", f"tenant {tenant}" if tenant else "every tenant", ""))
    # 1.2 Member State orders (Art 9: act against illegal content; Art 10: provide information).
    orders = _g(report, "notices", "by_source", "authority_order") or 0
    ordered = _g(report, "time_to_action_seconds", "authority_order") or {}
    rows += [
        ("1.2.1", "orders_to_act_received", cat, orders, "authority orders filed as notices"),
        (
            "1.2.1",
            "median_seconds_to_inform_authority_of_receipt",
            cat,
            None,
            "receipt is acknowledged in the filing call; " + NOT_RECORDED + " separately",
        ),
        ("1.2.1", "median_seconds_to_give_effect", cat, ordered.get("median"), "from receipt to the first restriction"),
        ("1.2.2", "orders_to_provide_information_received", "", None, NOT_RECORDED),
    ]
    # 1.3 Art 16 notices.
    by_source = _g(report, "notices", "by_source") or {}
    actions_by_source = _g(report, "actions", "by_source") or {}
    notices = sum(int(by_source.get(s, 0)) for s in _NOTICE_SOURCES)
    rows.append(("1.3", "notices_received", cat, notices, "user, trusted flagger and hotline notices"))
    for s in _NOTICE_SOURCES:
        rows.append(("1.3", "notices_received", f"{cat};source={s}", by_source.get(s, 0), ""))
    rows.append(("1.3", "notices_from_trusted_flaggers", cat, by_source.get("trusted_flagger", 0), "Art 22"))
    for basis, ground in (("law", "illegal_content"), ("terms_and_conditions", "incompatible_content")):
        n = sum(int(_g(actions_by_source, s, "by_ground", ground) or 0) for s in _NOTICE_SOURCES)
        rows.append(("1.3", "actions_taken_on_notices", f"basis={basis}", n, ""))
    automated = sum(int(_g(actions_by_source, s, "automated_decision") or 0) for s in _NOTICE_SOURCES)
    rows.append(("1.3", "notices_processed_by_automated_means", "", automated, "notices decided without a person"))
    for s in _NOTICE_SOURCES:
        t = _g(report, "time_to_action_seconds", s) or {}
        rows.append(("1.3", "median_seconds_to_take_action", f"source={s}", t.get("median"), ""))
    # 1.4 Own-initiative content moderation (hash matching is own initiative and automated detection).
    for action, n in sorted((_g(report, "actions", "own_initiative_by_type") or {}).items()):
        rows.append(("1.4", "own_initiative_measures", f"{cat};detection=automated_hash_matching;restriction={action}", n, ""))
    hm = _g(report, "time_to_action_seconds", "hash_match") or {}
    rows.append(("1.4", "median_seconds_to_take_action", "detection=automated_hash_matching", hm.get("median"), ""))
    # 1.5 Complaints (Art 20), out-of-court disputes (Art 21), suspensions (Art 23).
    appeals = _g(report, "appeals") or {}
    medians = _g(report, "complaints", "median_seconds_to_decide") or {}
    rows += [
        ("1.5", "complaints_received", "basis=law", appeals.get("received"), "internal complaints (appeals)"),
        ("1.5", "complaints_decided", "", appeals.get("decided"), ""),
        ("1.5", "complaints_decision_reversed", "", appeals.get("reversed"), "restriction lifted"),
        ("1.5", "complaints_decision_upheld", "", appeals.get("upheld"), ""),
        ("1.5", "median_seconds_to_decide_complaint", "outcome=reversed", medians.get("reinstated"), ""),
        ("1.5", "median_seconds_to_decide_complaint", "outcome=upheld", medians.get("upheld"), ""),
        ("1.5", "out_of_court_disputes", "", None, NOT_RECORDED),
        ("1.5", "suspensions_art_23", "", None, NOT_RECORDED),
    ]
    # 1.6 Automated means: purposes, accuracy indicators, error rates.
    rows.append(
        (
            "1.6",
            "automated_means_purpose",
            "",
            "detection of known child sexual abuse material by hash matching against vetted lists",
            "",
        )
    )
    share = _g(report, "actions", "automated_share") or {}
    rows.append(("1.6", "share_of_actions_with_automated_detection", "", share.get("detection"), ""))
    rows.append(("1.6", "share_of_actions_decided_by_automated_means", "", share.get("decision"), ""))
    for kind in ("by_tool", "by_list"):
        for name, acc in sorted((_g(report, "accuracy", kind) or {}).items()):
            label = f"{kind.removeprefix('by_')}={name}"
            rows.append(("1.6", "matches_reviewed_by_a_person", label, acc["reviewed"], ""))
            rows.append(("1.6", "matches_found_wrong", label, acc["wrong"], "dismissed, or reinstated on appeal"))
            rows.append(("1.6", "error_rate", label, acc["error_rate"], "wrong / reviewed"))
            rows.append(("1.6", "precision", label, acc["precision"], "1 - error_rate"))
    rows.append(
        (
            "1.6",
            "safeguards",
            "",
            "human review of every list match not under an automated policy; appeals decided by another person",
            "",
        )
    )
    return _write(("section", "quantity", "breakdown", "value", "note"), rows)


def eu_2021_1232(report: Mapping[str, Any]) -> str:
    """The annual report on voluntary detection (Reg. 2021/1232 Art 3(1)(g)(vii) as recalled in domain
    notes §3.5): cases split CSAM / solicitation, complaints and outcomes, errors and error rate per
    technology, retention, and the legal basis the detection ran under."""
    rows: list[tuple[Any, ...]] = []
    period = _g(report, "period") or {}
    rows.append(("period", "from", "", period.get("from"), ""))
    rows.append(("period", "to", "", period.get("to"), ""))
    eu = _g(report, "eu_voluntary_detection") or {}
    rows.append(("legal_basis", "eu_legal_basis_recorded", "", eu.get("legal_basis"), "Reg. 2021/1232 lapsed on 3 April 2026"))
    rows.append(("legal_basis", "detection_halted_for_eu", "", eu.get("detection_halted"), eu.get("detail")))
    cases = _g(report, "notices", "by_source", "hash_match") or 0
    rows.append(("cases", "cases_identified", "type=csam", cases, "tickets opened by a hash match"))
    rows.append(("cases", "cases_identified", "type=solicitation", 0, "hashguard detects no solicitation"))
    appeals = _g(report, "appeals") or {}
    rows.append(("complaints", "internal_complaints_received", "", appeals.get("received"), ""))
    rows.append(("complaints", "internal_complaints_outcome", "outcome=reversed", appeals.get("reversed"), ""))
    rows.append(("complaints", "internal_complaints_outcome", "outcome=upheld", appeals.get("upheld"), ""))
    rows.append(("complaints", "judicial_redress", "", None, NOT_RECORDED))
    for name, acc in sorted((_g(report, "accuracy", "by_tool") or {}).items()):
        rows.append(("errors", "matches_reviewed", f"technology={name}", acc["reviewed"], ""))
        rows.append(("errors", "false_positives", f"technology={name}", acc["wrong"], "dismissed, or reinstated on appeal"))
        rows.append(("errors", "error_rate", f"technology={name}", acc["error_rate"], "false_positives / matches_reviewed"))
    overall = _g(report, "accuracy", "overall") or {}
    rows.append(("errors", "error_rate_achieved", "technology=all", overall.get("error_rate"), ""))
    for hotline, r in sorted((_g(report, "reports", "by_hotline") or {}).items()):
        rows.append(("reports", "reports_to_public_interest_organisations", f"organisation={hotline}", r["filed"], ""))
    retention = _g(report, "retention") or {}
    rows.append(("retention", "evidence_retention_days", "", retention.get("evidence_days"), "then purged unless on legal hold"))
    rows.append(("retention", "appeal_window_days", "", retention.get("appeal_window_days"), ""))
    rows.append(("data", "media_kept", "", "none", "only hashes and case records are kept"))
    return _write(("section", "quantity", "breakdown", "value", "note"), rows)


def render(report: Mapping[str, Any], fmt: str) -> str:
    """The report in one of ``FORMATS`` (json is left to the caller, who knows its indentation)."""
    if fmt == "csv":
        return flat_csv(report)
    if fmt == "dsa-2024-2835":
        return dsa_2024_2835(report)
    if fmt == "eu-2021-1232":
        return eu_2021_1232(report)
    raise ValueError(f"no such format: {fmt!r}; one of {', '.join(FORMATS)}")
