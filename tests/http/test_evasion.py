"""Mirrored, rotated and bordered copies of listed photos, and a CMYK JPEG listed by python-threatexchange's
hasher, match through /v1/scan at every tool's default threshold, and the answer, the evidence and the
ticket say under which transform. A list switched to ``dihedral off`` no longer matches mirrored copies.

Lists are made from scikit-image's bundled photos with ``hashguard hash`` (each tool's own list), as a
list issuer would hash the originals.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from benchmarks.corpus import fit, photo
from tests.harness import scan
from tests.http.inprocess import Cli, Service
from tests.metrics_reading import samples
from tests.waiting import wait_until

PHOTOS = ("chelsea", "coffee", "astronaut")
TOOLS = ("pdq", "phash", "dhash")


def _picture(name: str) -> Image.Image:
    return fit(photo(f"{name}.png").convert("RGB"), (1024, 768))


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _import(cli: Cli, folder: Path, name: str, tool: str, rows: dict[str, str], *flags: str) -> None:
    path = folder / f"{name}.csv"
    path.write_text("id,hash,category\n" + "".join(f"{entry},{value},A1\n" for entry, value in rows.items()))
    out = cli("hashsets", "import", str(path), "--name", name, "--tool", tool, "--source", "tests", "--allow-unsigned", *flags)
    assert f"imported {len(rows)} {tool} entries" in out.stdout


@pytest.fixture
def photo_lists(cli: Cli, tmp_path: Path) -> None:
    """One list per tool holding the three photos, hashed by ``hashguard hash`` from PNG originals."""
    files = []
    for name in PHOTOS:
        path = tmp_path / f"{name}.png"
        _picture(name).save(path, "PNG")
        files.append(str(path))
    rows = [json.loads(line) for line in cli("hash", *files).stdout.splitlines()]
    for tool in TOOLS:
        _import(cli, tmp_path, f"photos-{tool}", tool, {Path(r["file"]).stem: r["hash"] for r in rows if r["tool"] == tool})


def _found(answer: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {m["tool"]: (m["entry_id"], m["transform"]) for m in answer["matches"]}


def test_mirrored_rotated_and_bordered_copies_match_with_their_transform(
    photo_lists: None, cli: Cli, start_service: Callable[..., Service]
) -> None:
    service = start_service()
    key = cli.new_key()
    reviewer = cli.new_key("reviewer")
    copies = {
        "mirror_h": _jpeg(ImageOps.mirror(_picture("chelsea"))),
        "rot90": _jpeg(_picture("coffee").transpose(Image.Transpose.ROTATE_90)),
        "trimmed": _jpeg(ImageOps.expand(_picture("astronaut"), border=51, fill="white")),
    }
    entries = {"mirror_h": "chelsea", "rot90": "coffee", "trimmed": "astronaut"}
    for transform, data in copies.items():
        result = scan(service, key, data, content_id=f"copy-{transform}")
        assert result.status == 200, result.body
        answer = result.json()
        assert answer["verdict"] == "match"
        assert _found(answer) == dict.fromkeys(TOOLS, (entries[transform], transform)), transform
        ticket = service.request("GET", f"/v1/tickets/{answer['ticket_id']}", None, reviewer)
        assert ticket.status == 200, ticket.body
        assert {(e["tool"], e["transform"]) for e in ticket.json()["evidence"]} == {(t, transform) for t in TOOLS}
    # The unedited photo still matches as itself.
    plain = scan(service, key, _jpeg(_picture("coffee")), content_id="plain").json()
    assert _found(plain) == dict.fromkeys(TOOLS, ("coffee", "original"))
    scraped = samples(service.request("GET", "/metrics").body)
    assert scraped[("hashguard_variant_matches_total", frozenset({("tool", "pdq"), ("transform", "mirror_h")}))] == 1

    # A list that holds its own dihedral hashes: mirrored copies stop matching it, the other lists still match.
    cli("hashsets", "dihedral", "photos-pdq", "off", "--reason", "the issuer lists mirrored copies itself")

    def mirrored_found() -> dict[str, tuple[str, str]]:
        return _found(scan(service, key, copies["mirror_h"], content_id="again").json())

    wait_until(lambda: "pdq" not in mirrored_found(), what="the pdq list to stop matching mirrored copies")
    assert mirrored_found() == {t: ("chelsea", "mirror_h") for t in ("phash", "dhash")}
    # Trimming is not a dihedral variant: the bordered copy still matches the pdq list.
    assert _found(scan(service, key, copies["trimmed"], content_id="bordered-again").json())["pdq"] == ("astronaut", "trimmed")


def test_no_variants_when_switched_off(photo_lists: None, cli: Cli, start_service: Callable[..., Service]) -> None:
    service = start_service(HASHGUARD_QUERY_VARIANTS="none")
    key = cli.new_key()
    answer = scan(service, key, _jpeg(ImageOps.mirror(_picture("chelsea")))).json()
    assert answer["verdict"] == "no_match"


def _threatexchange_pdq(data: bytes) -> str:
    """python-threatexchange's pdq_from_bytes for a CMYK JPEG: np.asarray of the CMYK image, whose first three
    planes pdqhash reads as R, G, B (tests/unit/test_variants.py explains why this is replayed, not imported)."""
    vector, _ = pdqhash.compute(np.asarray(Image.open(io.BytesIO(data))))
    return np.packbits(vector.astype(np.uint8)).tobytes().hex()


def test_cmyk_jpeg_matches_a_list_made_by_threatexchange(cli: Cli, start_service: Callable[..., Service], tmp_path: Path) -> None:
    out = io.BytesIO()
    _picture("coffee").convert("CMYK").save(out, "JPEG", quality=92)
    data = out.getvalue()
    _import(cli, tmp_path, "hma-export", "pdq", {"coffee-cmyk": _threatexchange_pdq(data)}, "--no-dihedral")
    assert "dihedral:   off" in cli("hashsets", "show", "hma-export").stdout
    service = start_service()
    answer = scan(service, cli.new_key(), data).json()
    assert answer["verdict"] == "match", answer
    assert _found(answer) == {"pdq": ("coffee-cmyk", "compat_cmyk")}
