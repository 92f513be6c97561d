"""Statements of reasons (DSA Art 17) for the uploader. Pure: built from the ticket and its decision.

A statement answers, in plain fields: what was restricted, where and for how long; the facts,
including whether a notice or the platform's own initiative started it; whether automated means
detected it and whether they decided it; the legal ground; and how to appeal. Alongside, the same
decision in the wire names of the DSA Transparency Database (Art 24(5)) — those names are kept in
this one module so they are easy to correct (domain notes 3.3).

The uploader's statement never names the list or entry that matched (that would tell an offender
which of their files are known) and never names the notifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from takedown.tickets import Decision, Evidence, Ticket
from takedown.workflow import Action, Source

DEFAULT_LEGAL_GROUND = "Child sexual abuse material: Directive 2011/93/EU Arts 3-7 and the national laws implementing it"

# DSA Transparency Database wire values (domain notes 3.3, graded P).
_VISIBILITY: Mapping[Action, str] = {
    Action.REMOVE: "DECISION_VISIBILITY_CONTENT_REMOVED",
    Action.BLOCK: "DECISION_VISIBILITY_CONTENT_DISABLED",
    Action.RESTRICT: "DECISION_VISIBILITY_OTHER",
}
_SOURCE_TYPE: Mapping[Source, str] = {
    Source.HASH_MATCH: "SOURCE_VOLUNTARY",  # own-initiative detection
    Source.USER_REPORT: "SOURCE_ARTICLE_16",
    Source.TRUSTED_FLAGGER: "SOURCE_TRUSTED_FLAGGER",
    Source.HOTLINE: "SOURCE_TYPE_OTHER_NOTIFICATION",
    Source.AUTHORITY_ORDER: "SOURCE_TYPE_OTHER_NOTIFICATION",
}
_CONTENT_TYPE: Mapping[str, str] = {
    "image": "CONTENT_TYPE_IMAGE",
    "video": "CONTENT_TYPE_VIDEO",
    "audio": "CONTENT_TYPE_AUDIO",
    "text": "CONTENT_TYPE_TEXT",
    "other": "CONTENT_TYPE_OTHER",
}
_GROUND: Mapping[str, str] = {
    "illegal_content": "DECISION_GROUND_ILLEGAL_CONTENT",
    "incompatible_content": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
}
_WHAT: Mapping[Action, str] = {
    Action.REMOVE: "The content was removed.",
    Action.BLOCK: "Access to the content was disabled.",
    Action.RESTRICT: "The visibility of the content was restricted.",
}
_SOURCE_TEXT: Mapping[Source, str] = {
    Source.HASH_MATCH: "The platform's own initiative: an automated check of the upload against vetted lists of known material.",
    Source.USER_REPORT: "A notice from a user (DSA Art 16).",
    Source.TRUSTED_FLAGGER: "A notice from a trusted flagger (DSA Art 22).",
    Source.HOTLINE: "A notice from a hotline.",
    Source.AUTHORITY_ORDER: "An order from a competent authority.",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class StatementContext:
    ticket: Ticket
    decision: Decision
    evidence: Sequence[Evidence]
    sources: Sequence[Source]  # every source that reported this content, first first
    content_type: str | None
    appeal_until: datetime


def appeal_deadline(decided_at: datetime, window_days: int) -> datetime:
    return decided_at + timedelta(days=window_days)


def statement(ctx: StatementContext) -> dict[str, Any]:
    """The statement of reasons for a restriction, as stored and served."""
    ticket, decision = ctx.ticket, ctx.decision
    if decision.action is None:
        raise ValueError("a statement of reasons is issued only for a restriction")
    ground = decision.ground or "illegal_content"
    legal_ground = decision.legal_ground or DEFAULT_LEGAL_GROUND
    tools = sorted({e.match.tool for e in ctx.evidence})
    detected = ticket.automated_detection
    content_type = ctx.content_type or ("image" if ticket.source is Source.HASH_MATCH else "other")
    facts = " ".join(
        [
            _SOURCE_TEXT[ticket.source],
            f"Automated detection by hash matching ({', '.join(tools)})." if tools else "",
            "The decision was taken by automated means under a policy for verified material."
            if decision.automated_decision
            else "The decision was taken by a trust-and-safety reviewer.",
            decision.explanation or "",
        ]
    ).strip()
    wire: dict[str, Any] = {
        "decision_visibility": [_VISIBILITY[decision.action]],
        "decision_ground": _GROUND[ground],
        "decision_facts": facts[:5000],
        "content_type": [_CONTENT_TYPE[content_type]],
        "category": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "category_specification": ["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"],
        "content_date": ticket.received_at.date().isoformat(),
        "application_date": decision.decided_at.date().isoformat(),
        "source_type": _SOURCE_TYPE[ticket.source],
        "automated_detection": "Yes" if detected else "No",
        "automated_decision": "AUTOMATED_DECISION_FULLY" if decision.automated_decision else "AUTOMATED_DECISION_NOT_AUTOMATED",
        "puid": str(ticket.id),
    }
    if decision.action is Action.RESTRICT:
        wire["decision_visibility_other"] = "visibility restricted"
    if content_type == "other":
        wire["content_type_other"] = "not specified"
    if ground == "illegal_content":
        wire["illegal_content_legal_ground"] = legal_ground[:500]
        wire["illegal_content_explanation"] = (decision.explanation or legal_ground)[:2000]
    else:
        wire["incompatible_content_ground"] = legal_ground[:500]
        wire["incompatible_content_explanation"] = (decision.explanation or legal_ground)[:2000]
        wire["incompatible_content_illegal"] = "Yes"
    return {
        "ticket_id": str(ticket.id),
        "content_id": ticket.content_id,
        "issued_at": decision.decided_at.isoformat(),
        "restriction": {
            "action": decision.action.value,
            "description": _WHAT[decision.action],
            "territorial_scope": "worldwide",
            "duration": "indefinite",
        },
        "facts": {
            "basis": "own_initiative" if ticket.source is Source.HASH_MATCH else "notice",
            "sources": [s.value for s in ctx.sources],
            "description": facts,
        },
        "automated_means": {
            "detection": detected,
            "detection_tools": tools,
            "decision": decision.automated_decision,
        },
        "ground": {"type": ground, "legal_ground": legal_ground, "explanation": decision.explanation},
        "redress": {
            "internal_complaint": {
                "how": f"Ask the platform to appeal: it calls POST /v1/tickets/{ticket.id}/appeal for you. "
                "A different reviewer than the one who decided will decide the appeal; it is never decided by automated means alone.",
                "until": ctx.appeal_until.isoformat(),
            },
            "out_of_court_dispute_settlement": "A certified out-of-court dispute settlement body (DSA Art 21).",
            "judicial_redress": "The courts of the Member State concerned.",
        },
        "transparency_database": wire,
    }
