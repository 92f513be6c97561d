"""The declared request types decide what a body may hold, with the error codes the service has always
answered: no database, no server, just the decoding every JSON endpoint goes through."""

from __future__ import annotations

import json

import msgspec
import pytest
from msgspec import UNSET

from detector.api import LookupBatch, LookupItem, LookupProbe
from detector.approvals.api import EventsQuery, NewApproval
from kernel.errors import BadRequest, MissingField, ServiceError
from kernel.routes import decode
from takedown.errors import InvalidInput
from takedown.requests import DecisionBody, NoticeBody, parse_notice

MD5 = {"md5": "00" * 16}


def _raw(body: object) -> bytes:
    return json.dumps(body).encode()


def _error(raw: bytes, kind: type, **mapping: object) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        decode(raw, kind, **mapping)  # type: ignore[arg-type]
    return caught.value


def test_a_lookup_item_is_trimmed_and_a_blank_url_is_absent() -> None:
    item = decode(_raw({"content_id": "  c-1 ", "content_url": "  ", "hashes": MD5, "extra": 1}), LookupItem)
    assert (item.content_id, item.content_url, item.hashes) == ("c-1", None, MD5)


def test_a_batch_is_told_apart_from_one_item_and_decoded_in_order() -> None:
    batch = _raw({"items": [{"content_id": f"c-{i}", "hashes": MD5} for i in range(1000)]})
    assert decode(batch, LookupProbe).items is not UNSET
    assert [i.content_id for i in decode(batch, LookupBatch).items][-1] == "c-999"
    assert decode(_raw({"content_id": "x", "hashes": MD5}), LookupProbe).items is UNSET


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"hashes": MD5}, "missing_field"),
        ({"content_id": "x"}, "missing_field"),
        ({"content_id": "x", "hashes": {}}, "bad_request"),
        ({"content_id": "x\u0000y", "hashes": MD5}, "bad_request"),
        ({"content_id": "x" * 1025, "hashes": MD5}, "bad_request"),
        ({"content_id": "   ", "hashes": MD5}, "missing_field"),
        ({"content_id": "", "hashes": MD5}, "missing_field"),
        ({"content_id": 7, "hashes": MD5}, "bad_request"),
        ({"content_id": "x", "hashes": {"md5": 7}}, "bad_request"),
        ([{"content_id": "x", "hashes": MD5}], "bad_request"),
    ],
)
def test_a_bad_lookup_item_gets_the_codes_it_always_got(body: object, code: str) -> None:
    error = _error(_raw(body), LookupItem)
    assert error.status == 400 and error.code == code and error.message


def test_a_missing_field_inside_a_batch_is_named_by_its_place() -> None:
    items = [{"content_id": "a", "hashes": MD5}] * 3 + [{"hashes": MD5}]
    error = _error(_raw({"items": items}), LookupBatch)
    assert isinstance(error, MissingField) and error.field_name == "items[3].content_id"
    blank = _error(_raw({"items": [*items[:3], {"content_id": " ", "hashes": MD5}]}), LookupBatch)
    assert isinstance(blank, MissingField) and blank.field_name == "items[3].content_id"
    assert _error(_raw({"items": [{"content_id": "a", "hashes": MD5}] * 1001}), LookupBatch).code == "bad_request"
    assert _error(_raw({"items": []}), LookupBatch).code == "bad_request"


def test_broken_json_lone_surrogates_and_deep_nesting_are_400_not_500() -> None:
    for raw in (b"{not json", b'{"content_id": "x\\ud800", "hashes": {}}', b"[" * 100_000, b"\xff\xfe"):
        error = _error(raw, LookupItem)
        assert isinstance(error, BadRequest) and error.code == "bad_request", raw[:20]


def test_a_malformed_value_is_never_repeated_in_the_error() -> None:
    secretish = "ab" * 31 + "g1"
    error = _error(_raw({"content_id": "x", "hashes": {"pdq": [secretish]}}), LookupItem)
    assert secretish not in error.message


def test_a_missing_field_is_missing_field_in_every_context() -> None:
    error = _error(_raw({"source": "user_report"}), NoticeBody, bad=InvalidInput)
    assert error.code == "missing_field" and "content_id" in error.message
    assert _error(_raw({"decision": "actioned"}), DecisionBody, bad=InvalidInput).code == "missing_field"
    assert _error(_raw({"tool": "pdq", "authority": "a", "jurisdiction": "GB"}), NewApproval).code == "missing_field"
    unknown = _error(_raw({"tool": "pdq", "authority": "a", "jurisdiction": "GB", "instrument": "i", "extra": 1}), NewApproval)
    assert unknown.code == "bad_request" and "extra" in unknown.message


def test_a_notice_is_checked_across_its_fields() -> None:
    notice = parse_notice(decode(_raw({"source": "hotline", "content_id": " c ", "explanation": " why "}), NoticeBody))
    assert (notice.content_id, notice.explanation, notice.content_type) == ("c", "why", None)
    for body in (
        {"source": "hash_match", "content_id": "c", "explanation": "x"},
        {"source": "user_report", "content_id": "c"},
        {"source": "authority_order", "content_id": "c"},
        {"source": "user_report", "content_id": "c", "explanation": "x", "authority": {"name": "a", "reference": "r"}},
    ):
        with pytest.raises(InvalidInput):
            parse_notice(decode(_raw(body), NoticeBody))
    order = {"source": "authority_order", "content_id": "c", "authority": {"name": "a", "reference": "r", "deadline": "tomorrow"}}
    assert _error(_raw(order), NoticeBody, bad=InvalidInput).code == "bad_request"
    naive = {**order, "authority": {"name": "a", "reference": "r", "deadline": "2026-01-31T12:00:00"}}
    assert _error(_raw(naive), NoticeBody, bad=InvalidInput).code == "bad_request"


def test_queries_convert_strings_to_the_declared_types() -> None:
    assert msgspec.convert({"limit": "10", "tool": "pdq"}, EventsQuery, strict=False) == EventsQuery(tool="pdq", limit=10)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"limit": "0"}, EventsQuery, strict=False)
