"""Which of the repository's files one matching scan runs, from the handler to the ticket row.

A structural measurement, not a timing: it builds the service in process on a fresh embedded
database seeded like ``hashguard serve --demo``, sends one warm-up scan (imports and first-call
paths are not the scan path), then records every repository file whose functions run during a
second matching ``POST /v1/scan``, the hashing threads included. Run it from the repository root:

    python -m benchmarks.scan_path
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from benchmarks.machine import commit
from hashguard.app import create_app
from hashguard.demo import seed
from kernel.db import open_pool
from kernel.settings import Settings

ROOT = Path(__file__).parents[1].resolve()


class FileRecorder:
    """A profile hook that notes the repository files whose functions are called while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.files: set[str] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.on and event == "call":
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] not in ("tests", "benchmarks"):
                self.files.add(str(path.relative_to(ROOT)))


async def trace(data_dir: Path) -> tuple[str, list[str]]:
    settings = Settings.from_env({"HASHGUARD_DATA_DIR": str(data_dir)})
    pool = await open_pool(settings.database_url, settings.data_dir, max_size=2)
    async with pool.acquire() as conn:
        demo = await seed(conn, data_dir)
    await pool.close()
    recorder = FileRecorder()
    # Installed before the app starts, so every thread it starts (the hashing pool's) carries it.
    threading.setprofile(recorder)
    sys.setprofile(recorder)
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            verdict = ""
            for attempt in ("warm-up", "traced"):
                recorder.on = attempt == "traced"
                response = await client.post(
                    f"/v1/scan?content_id=scan-path-{attempt}",
                    data=demo.image.read_bytes(),
                    headers={"Authorization": f"Bearer {demo.key}", "Content-Type": "image/jpeg"},
                )
                recorder.on = False
                verdict = (await response.json())["verdict"]
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]  # None removes the hook; typeshed versions disagree
    return verdict, sorted(recorder.files)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hashguard-scan-path-") as folder:
        verdict, files = asyncio.run(trace(Path(folder)))
    if verdict != "match":
        print(f"the traced scan answered {verdict!r}, not a match: the path to a ticket was not taken", file=sys.stderr)
        return 1
    print(f"commit {commit()}: a matching scan runs {len(files)} files of the repository, handler to ticket:")
    for name in files:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
