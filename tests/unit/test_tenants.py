"""The tenant rules of a key, without a database: a platform key belongs to exactly one tenant."""

from __future__ import annotations

import pytest

from kernel.keys import DEFAULT_TENANT_ID, TENANT_NAME, Principal, Role


def test_a_platform_key_sees_exactly_its_own_tenant() -> None:
    key = Principal(key_id=1, prefix="hg_x", role=Role.PLATFORM, tenant_id=7, tenants=frozenset({7}))
    assert key.sees(7) and not key.sees(DEFAULT_TENANT_ID)
    # A platform key that saw every tenant (or none, or another) would be the isolation bug itself.
    for tenant_id, tenants in ((None, None), (7, None), (7, frozenset({7, 8})), (7, frozenset({8}))):
        with pytest.raises(ValueError, match="exactly one tenant"):
            Principal(key_id=1, prefix="hg_x", role=Role.PLATFORM, tenant_id=tenant_id, tenants=tenants)


def test_a_staff_key_sees_every_tenant_unless_limited() -> None:
    everyone = Principal(key_id=2, prefix="hg_y", role=Role.REVIEWER)
    assert everyone.sees(1) and everyone.sees(99)
    limited = Principal(key_id=3, prefix="hg_z", role=Role.AUDITOR, tenants=frozenset({2, 3}))
    assert limited.sees(2) and not limited.sees(1)
    with pytest.raises(ValueError, match="only platform keys"):
        Principal(key_id=4, prefix="hg_w", role=Role.LEAD, tenant_id=1)


def test_tenant_names_are_short_plain_slugs() -> None:
    assert all(TENANT_NAME.fullmatch(n) for n in ("default", "example-platform", "a", "x.y_z", "9" * 63))
    assert not any(TENANT_NAME.fullmatch(n) for n in ("", "Upper", "with space", "-lead", "9" * 64, "naïve"))
