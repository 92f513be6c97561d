"""``hashguard backfill`` against the service: a catalogue of scikit-image photos, a list made from
four of them, shards that cover the catalogue exactly, a URL listing with allowed and refused
hosts, and a run killed mid-way (SIGKILL, as a subprocess) that resumes with no duplicate and no
gap. The service runs in this process; the stand-ins (a lookup proxy that hangs on request, a
photo host) are aiohttp on loopback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from PIL import Image

from benchmarks.corpus import PHOTOS, photo
from tests.harness import free_port
from tests.http.inprocess import Cli, Service
from tests.waiting import wait_until

LISTED = 4  # the first four photos are on the list


def write_catalogue(folder: Path) -> list[str]:
    """Twelve photos as JPEGs in two sub-folders and one file that is no image; their keys, sorted."""
    keys = []
    for i, name in enumerate(PHOTOS[:12]):
        key = f"{'ab'[i % 2]}/{Path(name).stem}.jpg"
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        image = photo(name)
        image.thumbnail((640, 640))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=90)
        path.write_bytes(buffer.getvalue())
        keys.append(key)
    (folder / "b" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a picture")
    return sorted(keys)


@pytest.fixture
def setup(cli: Cli, start_service: Callable[..., Service], tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "catalogue"
    keys = write_catalogue(folder)
    listed = keys[:LISTED]
    rows = [json.loads(line) for line in cli("hash", "--tool", "pdq", *(str(folder / k) for k in listed)).stdout.splitlines()]
    (tmp_path / "list.csv").write_text("id,hash\n" + "".join(f"entry-{Path(r['file']).stem},{r['hash']}\n" for r in rows))
    cli("hashsets", "import", str(tmp_path / "list.csv"), "--name", "photos", "--tool", "pdq", "--allow-unsigned")
    service = start_service()
    key_file = tmp_path / "key"
    key_file.write_text(cli.new_key() + "\n")
    return {"folder": folder, "keys": keys, "listed": listed, "service": service, "key_file": key_file}


def backfill_args(setup: dict[str, Any], url: str, out: Path, *extra: str) -> list[str]:
    return [
        "backfill",
        str(setup["folder"]),
        "--url",
        url,
        "--key-file",
        str(setup["key_file"]),
        "--out",
        str(out),
        "--tool",
        "pdq",
        "--workers",
        "1",
        "--quiet",
        *extra,
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_shards_cover_the_catalogue_once_and_find_every_listed_photo(cli: Cli, setup: dict[str, Any], tmp_path: Path) -> None:
    service = setup["service"]
    matched: list[str] = []
    errors: list[str] = []
    for shard in ("0/2", "1/2"):
        out = tmp_path / f"shard{shard[0]}.csv"
        done = cli(*backfill_args(setup, service.url, out, "--shard", shard, "--batch", "3"))
        assert "looked up" in done.stdout
        rows = read_csv(out)
        assert all(r["hashset"] == "photos" and r["tool"] == "pdq" and r["ticket_id"] for r in rows)
        assert all(r["entry_id"] == f"entry-{Path(r['content_id']).stem}" for r in rows)
        matched += [r["content_id"] for r in rows]
        errors += [r["content_id"] for r in read_csv(out.with_name(out.stem + ".errors.csv"))]
        state = json.loads((out.with_name(out.name + ".checkpoint.json")).read_text())
        assert state["done"] == state["matched"] + state["failed"] + (state["done"] - state["matched"] - state["failed"])
    assert sorted(matched) == setup["listed"]
    assert errors == ["b/broken.jpg"]
    # No hash value of the list (nor of the catalogue) is written anywhere.
    listed_hashes = (tmp_path / "list.csv").read_text().split()[1:]
    written = "".join(p.read_text() for p in tmp_path.glob("shard*"))
    assert not [h for h in listed_hashes if h.split(",")[1] in written]


def test_bad_arguments_get_one_line_errors(cli: Cli, setup: dict[str, Any], tmp_path: Path) -> None:
    url = setup["service"].url
    out = tmp_path / "m.csv"
    assert cli(*backfill_args(setup, url, out, "--shard", "2/2"), check=False).returncode == 2
    assert cli(*backfill_args(setup, url, out, "--batch", "1001"), check=False).returncode == 1
    missing_key = [a if a != str(setup["key_file"]) else str(tmp_path / "nope") for a in backfill_args(setup, url, out)]
    refused = cli(*missing_key, check=False)
    assert refused.returncode == 1 and "cannot read the key file" in refused.stderr
    wrong_key = tmp_path / "wrong"
    wrong_key.write_text("hg_not_a_key")
    bad = cli(*[a if a != str(setup["key_file"]) else str(wrong_key) for a in backfill_args(setup, url, out)], check=False)
    assert bad.returncode == 1 and "refused a lookup batch: 401" in bad.stderr
    # The refused run left its checkpoint (nothing done): a run of another shard does not reuse it.
    assert json.loads(out.with_name("m.csv.checkpoint.json").read_text())["done"] == 0
    other = cli(*backfill_args(setup, url, out, "--shard", "1/2"), check=False)
    assert other.returncode == 1 and "belongs to another run" in other.stderr


class Standin:
    """aiohttp on loopback: forwards /v1/lookup to the service (hanging on request ``hang_on``), serves /photos/."""

    def __init__(self, target: str, photos: Path, hang_on: int | None = None) -> None:
        self.target, self.photos, self.hang_on = target, photos, hang_on
        self.lookups = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _lookup(self, request: web.Request) -> web.StreamResponse:
        self.lookups += 1
        if self.lookups == self.hang_on:
            await asyncio.Event().wait()  # never answers: the client is killed while it waits
        async with (
            ClientSession() as session,
            session.post(
                self.target + "/v1/lookup",
                data=await request.read(),
                headers={"Authorization": request.headers["Authorization"], "Content-Type": "application/json"},
            ) as upstream,
        ):
            return web.Response(body=await upstream.read(), status=upstream.status, content_type="application/json")

    async def _photo(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["name"] == "moved.jpg":
            raise web.HTTPFound("http://elsewhere.invalid/moved.jpg")
        return web.FileResponse(self.photos / request.match_info["name"])

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/lookup", self._lookup)
        app.router.add_get("/photos/{name}", self._photo)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.mark.slow
def test_a_killed_backfill_resumes_with_no_duplicate_and_no_gap(cli: Cli, setup: dict[str, Any], tmp_path: Path) -> None:
    service = setup["service"]
    out = tmp_path / "matches.csv"
    checkpoint = tmp_path / "matches.csv.checkpoint.json"
    standin = Standin(service.url, setup["folder"], hang_on=3)
    try:
        env = {**os.environ, **cli.env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "hashguard.cli", *backfill_args(setup, standin.url, out, "--batch", "2")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            # Two batches answered and checkpointed, the third in flight at the stand-in: kill it there.
            wait_until(lambda: standin.lookups >= 3 or proc.poll() is not None, 120, what="the third lookup batch")
            assert proc.poll() is None, proc.communicate()
            wait_until(lambda: json.loads(checkpoint.read_text())["done"] == 4, 30, what="the second checkpoint")
            # Only the backfill itself: its hashing workers notice and exit on their own.
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
    finally:
        standin.close()
    killed_at = json.loads(checkpoint.read_text())
    assert killed_at["done"] == 4 and killed_at["last_key"] == setup["keys"][3]
    # A write the killed run made after its last checkpoint is cut off on resume.
    with out.open("a") as f:
        f.write("a/written-after-the-checkpoint.jpg,x,photos,1,entry-x,pdq,1,,\n")

    resumed = cli(*backfill_args(setup, service.url, out, "--batch", "2"))
    assert "13 of 13 items looked up" in resumed.stdout
    rows = read_csv(out)
    assert sorted(r["content_id"] for r in rows) == setup["listed"]  # each listed photo once: no duplicate, no gap
    assert [r["content_id"] for r in read_csv(out.with_name("matches.errors.csv"))] == ["b/broken.jpg"]
    final = json.loads(checkpoint.read_text())
    assert (final["done"], final["matched"], final["failed"]) == (13, LISTED, 1)
    # Run again on a finished checkpoint: nothing is sent or written twice.
    again = cli(*backfill_args(setup, service.url, out, "--batch", "2"))
    assert "13 of 13 items looked up" in again.stdout and read_csv(out) == rows


def test_a_listing_of_paths_and_urls_fetches_only_from_allowed_hosts(cli: Cli, setup: dict[str, Any], tmp_path: Path) -> None:
    folder, listed = setup["folder"], setup["listed"]
    photos = tmp_path / "served"
    photos.mkdir()
    for key in listed[:2]:
        (photos / Path(key).name).write_bytes((folder / key).read_bytes())
    Image.new("RGB", (64, 64)).save(photos / "moved.jpg")
    standin = Standin(setup["service"].url, photos)
    try:
        listing = tmp_path / "listing.txt"
        lines = [
            "# one path or URL a line",
            f"catalogue/{listed[2]}",  # relative to the listing
            str(folder / listed[3]),
            *(f"{standin.url}/photos/{Path(k).name}" for k in listed[:2]),
            f"{standin.url}/photos/moved.jpg",  # redirects to a host that is not allowed
            "http://not-allowed.invalid/photo.jpg",
            "ftp://127.0.0.1/photo.jpg",
            "catalogue/missing.jpg",
        ]
        listing.write_text("\n".join(lines) + "\n")
        out = tmp_path / "urls.csv"
        args = backfill_args(setup, setup["service"].url, out, "--allow-host", "127.0.0.1")
        args[1] = str(listing)
        cli(*args)
    finally:
        standin.close()
    matched = sorted(r["content_id"] for r in read_csv(out))
    assert matched == sorted(
        [f"catalogue/{listed[2]}", str(folder / listed[3]), *(f"{standin.url}/photos/{Path(k).name}" for k in listed[:2])]
    )
    errors = {r["content_id"]: r["code"] for r in read_csv(tmp_path / "urls.errors.csv")}
    assert errors == {
        f"{standin.url}/photos/moved.jpg": "host_not_allowed",
        "http://not-allowed.invalid/photo.jpg": "host_not_allowed",
        "ftp://127.0.0.1/photo.jpg": "unsupported_url",
        "catalogue/missing.jpg": "unreadable",
    }
