"""The names of the scan's query variants, for ``HASHGUARD_QUERY_VARIANTS`` (what they are: ``detector.variants``).

They live in the kernel so the one ``Settings`` class can validate the setting at start-up; the
detector imports them from here, so there is one list.
"""

from __future__ import annotations

ORIGINAL = "original"
DIHEDRAL: tuple[str, ...] = ("rot90", "rot180", "rot270", "mirror_h", "mirror_v", "transpose", "transverse")
TRIMMED = "trimmed"
COMPAT: tuple[str, ...] = ("compat_cmyk", "compat_palette", "compat_grey16")
VARIANTS: tuple[str, ...] = (*DIHEDRAL, TRIMMED, *COMPAT)
# Group names accepted in HASHGUARD_QUERY_VARIANTS besides the variants' own names.
GROUPS: dict[str, tuple[str, ...]] = {"all": VARIANTS, "dihedral": DIHEDRAL, "compat": COMPAT, "none": ()}


def parse_variants(raw: str) -> tuple[str, ...]:
    """Comma-separated variant or group names, as the variants they stand for, in canonical order."""
    wanted: set[str] = set()
    for part in (p.strip().lower() for p in raw.split(",")):
        if not part:
            continue
        if part in GROUPS:
            wanted.update(GROUPS[part])
        elif part in VARIANTS:
            wanted.add(part)
        else:
            raise ValueError(f"unknown query variant {part!r}: use {', '.join((*GROUPS, *VARIANTS))}")
    return tuple(v for v in VARIANTS if v in wanted)
