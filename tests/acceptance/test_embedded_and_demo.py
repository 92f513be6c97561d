"""The zero-configuration path: no HASHGUARD_DATABASE_URL, an embedded PostgreSQL in the data
folder, the demo, and data that survives a restart."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.conftest import Cli, Service, http


def test_demo_on_the_embedded_database_matches_and_survives_restart(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGUARD_")}
    env.update(HASHGUARD_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    service = Service(env=env, log_path=tmp_path / "serve.log")
    service.start("--demo")
    try:
        [line] = [line for line in service.log().splitlines() if line.strip().startswith("curl ")]
        words = shlex.split(line)
        url = words[words.index("-X") + 2]
        # The key is never printed: the curl reads it from its 0600 file under the data folder.
        key_file = tmp_path / "data" / "demo-key.txt"
        assert words[words.index("-H") + 1] == f"Authorization: Bearer $(cat {key_file})"
        assert key_file.stat().st_mode & 0o777 == 0o600
        demo_key = key_file.read_text().strip()
        assert demo_key not in service.log()
        upload = Path(words[-1].removeprefix("@"))
        assert upload.is_file()
        result = http("POST", url, upload.read_bytes(), {"Authorization": f"Bearer {demo_key}", "Content-Type": "image/jpeg"})
        assert result.status == 200, result.body
        assert result.json()["verdict"] == "match"
        assert result.json()["matches"][0]["hashset"] == "DEMO-synthetic-not-real"
        if shutil.which("curl"):
            printed = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=30, check=True)
            assert '"verdict": "match"' in printed.stdout
    finally:
        assert service.stop() == 0
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()

    # Restart on the same folder: the list and the key are still there, and --demo seeds nothing twice.
    again = Service(env=env, log_path=tmp_path / "serve-2.log", port=service.port).start("--demo")
    try:
        ready = again.request("GET", "/readyz").json()
        assert [h["name"] for h in ready["index"]["hashsets"]] == ["DEMO-synthetic-not-real"]
        assert (
            again.request("POST", url.removeprefix(again.url), upload.read_bytes(), demo_key, Content_Type="image/jpeg").json()[
                "verdict"
            ]
            == "match"
        )
        keys = Cli(env)("keys", "list").stdout.splitlines()
        assert len(keys) == 1 and "\tdemo" in keys[0]
        assert demo_key not in again.log()
    finally:
        again.stop()
