"""``hashguard serve --demo``: a clearly labelled demo list made from drawn pictures, and a demo key."""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np
import pdqhash

from detector.approvals import pg as approvals_pg
from detector.synthetic import draw, encode, variant
from hashsets import lists
from hashsets.parse import ListEntry
from kernel import auditlog, keystore
from kernel.keys import Role, new_key

DEMO_LIST = "DEMO-synthetic-not-real"
DEMO_SEEDS = range(1, 9)
DEMO_ALLOWANCE = "DEMO: lets pdq scan against the synthetic demo list; not a regulatory approval"
# Who the demo's records (list import, allowance, key) are recorded as, in their events and the audit log.
DEMO_ACTOR = "hashguard serve --demo"


@dataclass(frozen=True, kw_only=True, slots=True)
class Demo:
    """The demo's key lives only in ``key_file`` (mode 0600): it is never printed, not even once."""

    key: str
    key_file: Path
    image: Path
    created: bool  # the key was created by this start


async def seed(conn: asyncpg.Connection, data_dir: Path) -> Demo:
    """Create the demo list, images and key once; later runs reuse them."""
    folder = data_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    if await conn.fetchval("SELECT 1 FROM hashsets WHERE name = $1", DEMO_LIST) is None:
        entries = []
        for seed_ in DEMO_SEEDS:
            picture = draw(seed_)
            (folder / f"demo-{seed_}.png").write_bytes(encode(picture))
            vector, _ = pdqhash.compute(np.asarray(picture))
            entries.append(
                ListEntry(
                    line=seed_, entry_id=f"demo-{seed_}", value=np.packbits(vector.astype(np.uint8)).tobytes(), category=None
                )
            )
        await lists.import_entries(
            conn,
            name=DEMO_LIST,
            tool="pdq",
            source="hashguard demo (synthetic drawings, not real material)",
            entries=entries,
            file_sha256=hashlib.sha256(b"".join(e.value for e in entries)).digest(),
            is_demo=True,
            actor=DEMO_ACTOR,
        )
    # A fresh install has no approvals, so nothing would scan: the demo allows pdq locally, and
    # says so in the record, rather than pretending a regulator approved anything.
    if not any(a.tool == "pdq" for a in await approvals_pg.standing_allowances(conn)):
        await approvals_pg.allow_local(conn, tool="pdq", versions="*", reason=DEMO_ALLOWANCE, actor=DEMO_ACTOR)
    # The curl scans a smaller, re-encoded copy, to show that PDQ matches more than exact bytes.
    upload = folder / "upload-resized-copy-of-demo-3.jpg"
    if not upload.exists():
        upload.write_bytes(variant(draw(3), scale=0.6, quality=75))
    key_file = data_dir / "demo-key.txt"
    if key_file.exists():
        os.chmod(key_file, 0o600)  # an older install may have left it readable by others
        return Demo(key=key_file.read_text().strip(), key_file=key_file, image=upload, created=False)
    made = new_key()
    async with conn.transaction():
        await keystore.insert_key(conn, made, Role.PLATFORM, "demo")
        await auditlog.append_audit(
            conn,
            actor=DEMO_ACTOR,
            action="key.created",
            subject=f"key:{made.prefix}",
            after={"role": "platform", "label": "demo"},
        )
        # Created 0600 from the start (no moment readable by others); inside the transaction, so a key
        # that could not be written down is not created either.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(made.secret + "\n")
    return Demo(key=made.secret, key_file=key_file, image=upload, created=True)


def curl_command(demo: Demo, host: str, port: int) -> str:
    """The curl to try; it reads the key from its file (``$(cat ...)``), so the key is never printed."""
    url = f"http://{host}:{port}/v1/scan?content_id=demo-upload-1"
    return (
        f'curl -sS -X POST {shlex.quote(url)} -H "Authorization: Bearer $(cat {shlex.quote(str(demo.key_file))})"'
        f" -H 'Content-Type: image/jpeg' --data-binary @{shlex.quote(str(demo.image))}"
    )
