"""What the http and acceptance tiers share: HTTP over loopback, the shape of a ``hashguard``
command runner and of a running service, and a list made from drawn pictures.

Both tiers drive the service the same way, over real HTTP on 127.0.0.1, so a test body reads
the same whether the service is a ``hashguard serve`` process (tests/conftest.py: ``Cli``,
``Service``) or the app served in this process (tests/http/inprocess.py: ``Cli``, ``Service``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from detector.synthetic import draw, encode

SEEDS = (11, 12, 13, 14, 15)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> HttpResult:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpResult(error.code, dict(error.headers), error.read())


def ok(result: HttpResult, status: int = 200) -> Any:
    """The JSON body of ``result``, which must have ``status``."""
    assert result.status == status, result.body
    return result.json()


class RunsCommands(Protocol):
    """Runs ``hashguard`` commands against one database (as a subprocess, or in this process)."""

    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]: ...

    def new_key(self, role: str = "platform") -> str: ...


class Serves(Protocol):
    """A running hashguard service reached over loopback HTTP."""

    @property
    def url(self) -> str: ...

    def request(
        self, method: str, path: str, body: bytes | None = None, key: str | None = None, **headers: str
    ) -> HttpResult: ...

    def post_json(self, path: str, payload: Any, key: str | None) -> HttpResult: ...

    def log(self) -> str: ...


def make_list(cli: RunsCommands, folder: Path, tool: str = "pdq") -> dict[int, str]:
    """Draw pictures, hash them with ``hashguard hash``, write a CSV list; return seed -> hex hash."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for seed in SEEDS:
        path = folder / f"picture-{seed}.png"
        path.write_bytes(encode(draw(seed)))
        files.append(str(path))
    rows = [json.loads(line) for line in cli("hash", "--tool", tool, *files).stdout.splitlines()]
    hashes = {int(Path(r["file"]).stem.split("-")[1]): r["hash"] for r in rows}
    lines = ["id,hash,category"] + [f"entry-{seed},{value},A1" for seed, value in hashes.items()]
    (folder / "list.csv").write_text("\n".join(lines) + "\n")
    return hashes


def import_test_list(cli: RunsCommands, folder: Path) -> dict[int, str]:
    """``make_list`` in ``folder``, imported unsigned as the pdq list "test-list"; return seed -> hex hash."""
    hashes = make_list(cli, folder)
    out = cli(
        "hashsets",
        "import",
        str(folder / "list.csv"),
        "--name",
        "test-list",
        "--tool",
        "pdq",
        "--source",
        "tests",
        "--allow-unsigned",
    )
    assert "imported 5 pdq entries" in out.stdout
    return hashes


def scan(service: Serves, key: str, body: bytes, content_id: str | None = "item-1", ctype: str = "image/jpeg") -> HttpResult:
    path = "/v1/scan" + (f"?content_id={content_id}" if content_id else "")
    return service.request("POST", path, body, key, Content_Type=ctype)
