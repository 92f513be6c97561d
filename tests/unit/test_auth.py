from __future__ import annotations

from kernel.keys import PREFIX_LENGTH, key_digest, new_key, parse_bearer


def test_new_keys_are_unique_and_only_their_digest_identifies_them() -> None:
    a, b = new_key(), new_key()
    assert a.secret != b.secret and a.digest != b.digest
    assert a.digest == key_digest(a.secret)
    assert a.prefix == a.secret[:PREFIX_LENGTH]
    assert len(a.secret) > 40


def test_parse_bearer() -> None:
    key = new_key().secret
    assert parse_bearer(f"Bearer {key}") == key
    assert parse_bearer(f"bearer   {key}") == key
    assert parse_bearer(None) is None
    assert parse_bearer("") is None
    assert parse_bearer(f"Basic {key}") is None
    assert parse_bearer("Bearer something-else") is None
    assert parse_bearer("Bearer hg_" + "x" * 500) is None
