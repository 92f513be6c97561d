"""``hashguard backfill``: hash a platform's existing catalogue and look it up against a running hashguard.

A catalogue is a folder (every file under it, in sorted order of relative path) or a text file
listing one local path or http(s) URL per line (URLs only on hosts given with ``--allow-host``;
redirects elsewhere are refused). Items are hashed with every core, in worker processes that run
the service's own hashing (``detector.hashjob.hash_upload``), and sent as 1,000-item
``/v1/lookup`` batches with a platform key; every match is written to a CSV, every item that
could not be read or decoded to a second CSV beside it.

Resumable: after each batch's answer is written (flushed and fsynced), a checkpoint records how
many items are done, the last item's key and both CSVs' lengths. A run started again with the
same checkpoint truncates the CSVs to those lengths (dropping whatever a killed run wrote after
its last checkpoint) and continues with the next item, so an interrupted backfill ends with
every item looked up and written exactly once. The batch in flight when a run was killed is
sent again: the service joins the content's existing ticket (tickets are per tenant and
content id), so nothing is opened twice.

Sharding (``--shard i/n``, for a Kubernetes Indexed Job): item keys are assigned to shards by a
CRC-32 of the key, so a shard's items do not move when others are added or removed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import multiprocessing
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tqdm import tqdm

from detector.decode import HashingPath
from detector.hashjob import HashJob, hash_upload, prepare_worker
from detector.tools.registry import ToolRegistry
from kernel.errors import ServiceError
from kernel.settings import Settings

# The platform key lookups are sent with, when --key-file is not given.
KEY_VARIABLE = "HASHGUARD_BACKFILL_KEY"
BATCH = 1000  # the service's largest /v1/lookup batch
MATCH_COLUMNS = [
    "content_id",
    "location",
    "hashset",
    "hashset_version",
    "entry_id",
    "tool",
    "tool_version",
    "ticket_id",
    "scan_id",
]
ERROR_COLUMNS = ["content_id", "location", "code", "message"]
_RETRIES = 6


class BackfillError(Exception):
    """The backfill cannot go on (the reason is in the message); its checkpoint is where it stopped."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Item:
    key: str  # the content id sent to the service: the relative path, or the line as listed
    location: str  # an absolute path or a URL


@dataclass(frozen=True, kw_only=True, slots=True)
class Hashed:
    item: Item
    hashes: dict[str, str] = field(default_factory=dict)  # tool -> formatted hash
    error: tuple[str, str] | None = None  # (code, message) when the item could not be hashed


@dataclass(kw_only=True)
class Checkpoint:
    """How far one shard's run got; written atomically after every batch."""

    run: str  # what the run is (source, shard, tools): a checkpoint of another run is refused
    done: int = 0
    last_key: str | None = None
    matches_bytes: int = 0
    errors_bytes: int = 0
    matched: int = 0
    failed: int = 0

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise BackfillError(f"the checkpoint {path} is not one this command wrote: {exc}") from None

    def save(self, path: Path) -> None:
        partial = path.with_name(path.name + ".partial")
        with partial.open("w") as f:
            json.dump(asdict(self), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n (argparse type)."""
    index, slash, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not slash or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), not {text!r}")
    return i, n


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


def catalogue(source: Path) -> list[Item]:
    """Every item of a folder (sorted by relative path) or of a listing file (in its order)."""
    if source.is_dir():
        return [
            Item(key=path.relative_to(source).as_posix(), location=str(path))
            for path in sorted(p for p in source.rglob("*") if p.is_file())
        ]
    try:
        lines = source.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BackfillError(f"cannot read the catalogue {source}: {exc}") from None
    items = []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        if "://" in line:
            items.append(Item(key=line, location=line))
        else:
            path = Path(line) if Path(line).is_absolute() else source.parent / line
            items.append(Item(key=line, location=str(path)))
    return items


# ---------------------------------------------------------------- hashing, in worker processes

_worker: dict[str, Any] = {}


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _SameHostsOnly(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        _check_url(newurl, _worker["hosts"])
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_url(url: str, hosts: frozenset[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Refused("unsupported_url", "only http(s) URLs can be fetched")
    if parts.hostname.lower() not in hosts:
        raise _Refused("host_not_allowed", f"{parts.hostname} is not an allowed host (--allow-host)")


def _orphan_watch(parent: int) -> None:
    """A worker whose backfill was killed (SIGKILL leaves it no time to stop its pool) exits too."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _start_worker(
    parent: int, tools: Sequence[str], max_pixels: int, hashing: str, memory: int, max_bytes: int, hosts: frozenset[str]
) -> None:
    # The backfill's pid comes from the backfill itself: it may be gone before this worker has started.
    threading.Thread(target=_orphan_watch, args=(parent,), name="orphan-watch", daemon=True).start()
    prepare_worker()
    _worker.update(
        tools=tuple(ToolRegistry.load(tools)),
        max_pixels=max_pixels,
        hashing=HashingPath(hashing),
        memory=memory,
        max_bytes=max_bytes,
        hosts=hosts,
        opener=urllib.request.build_opener(_SameHostsOnly()),
    )


def _read(item: Item) -> bytes:
    limit: int = _worker["max_bytes"]
    if "://" in item.location:
        _check_url(item.location, _worker["hosts"])
        try:
            with _worker["opener"].open(item.location, timeout=60) as response:
                data: bytes = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            raise _Refused("fetch_failed", f"the host answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _Refused("fetch_failed", str(getattr(exc, "reason", exc))) from None
    else:
        try:
            with open(item.location, "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise _Refused("unreadable", exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise _Refused("too_large", f"larger than {limit} bytes")
    return data


def _hash(item: Item) -> Hashed:
    try:
        job = HashJob(
            data=_read(item),
            max_pixels=_worker["max_pixels"],
            hashing=_worker["hashing"],
            tools=_worker["tools"],
            memory_budget=_worker["memory"],
        )
        results = hash_upload(job)
    except _Refused as exc:
        return Hashed(item=item, error=(exc.code, str(exc)))
    except ServiceError as exc:
        return Hashed(item=item, error=(exc.code, exc.message))
    return Hashed(item=item, hashes={t.name: t.format(results[t.name].value) for t in _worker["tools"]})


# ---------------------------------------------------------------- lookups


@dataclass(frozen=True, kw_only=True, slots=True)
class Service:
    url: str
    key: str
    timeout_s: float = 300.0

    def lookup(self, hashed: Sequence[Hashed]) -> list[dict[str, Any]]:
        """The service's answer per item, in order; retries what is worth retrying (503, 429, no connection)."""
        body = json.dumps(
            {"items": [{"content_id": h.item.key, "hashes": h.hashes} for h in hashed]}, separators=(",", ":")
        ).encode()
        delay = 1.0
        for attempt in range(_RETRIES):
            request = urllib.request.Request(
                self.url.rstrip("/") + "/v1/lookup",
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    items: list[dict[str, Any]] = json.loads(response.read())["items"]
                if [i["content_id"] for i in items] != [h.item.key for h in hashed]:
                    raise BackfillError("the service answered for other items than it was sent")
                return items
            except urllib.error.HTTPError as exc:
                error = _error_of(exc)
                if exc.code not in (429, 502, 503, 504) or attempt == _RETRIES - 1:
                    raise BackfillError(f"the service refused a lookup batch: {exc.code} {error}") from None
                retry_after = exc.headers.get("Retry-After")
                wait = float(retry_after) if retry_after and retry_after.isdigit() else delay
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if attempt == _RETRIES - 1:
                    raise BackfillError(f"cannot reach the service at {self.url}: {getattr(exc, 'reason', exc)}") from None
                wait = delay
            time.sleep(min(wait, 60.0))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return exc.reason or ""


# ---------------------------------------------------------------- the run


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    items: int
    done: int
    matched: int
    failed: int


def _open_at(path: Path, length: int, header: list[str]) -> IO[str]:
    """``path`` opened for appending, cut back to ``length`` bytes (0: a new file with ``header``)."""
    if length == 0:
        f = path.open("w", newline="")
        csv.writer(f).writerow(header)
        return f
    try:
        with path.open("r+b") as raw:
            raw.truncate(length)
    except FileNotFoundError:
        raise BackfillError(f"{path} is gone, but the checkpoint says {length} bytes of it were written") from None
    return path.open("a", newline="")


def _durable(f: IO[str]) -> int:
    f.flush()
    os.fsync(f.fileno())
    return f.tell()


def run(
    *,
    source: Path,
    service: Service,
    out: Path,
    checkpoint_path: Path,
    tools: Sequence[str],
    shard: tuple[int, int] = (0, 1),
    workers: int | None = None,
    batch: int = BATCH,
    hosts: Sequence[str] = (),
    settings: Settings | None = None,
    progress: bool = True,
) -> Outcome:
    settings = settings or Settings.from_env()
    index, count = shard
    items = [i for i in catalogue(source) if shard_of(i.key, count) == index]
    run_id = json.dumps({"source": str(source.resolve()), "shard": f"{index}/{count}", "tools": sorted(tools)})
    state = Checkpoint.load(checkpoint_path)
    if state is None:
        state = Checkpoint(run=run_id)
    elif state.run != run_id:
        raise BackfillError(f"the checkpoint {checkpoint_path} belongs to another run ({state.run}); use another checkpoint file")
    elif state.done > len(items) or (state.done and items[state.done - 1].key != state.last_key):
        raise BackfillError(
            f"the catalogue changed since the checkpoint {checkpoint_path} was written (item {state.done} is no longer"
            f" {state.last_key!r}); start again with a new checkpoint and output"
        )
    errors_path = out.with_name(out.stem + ".errors.csv")
    matches_file = _open_at(out, state.matches_bytes, MATCH_COLUMNS)
    errors_file = _open_at(errors_path, state.errors_bytes, ERROR_COLUMNS)
    matches, errors = csv.writer(matches_file), csv.writer(errors_file)
    if state.done == 0:
        state.matches_bytes, state.errors_bytes = _durable(matches_file), _durable(errors_file)
        state.save(checkpoint_path)
    bar = tqdm(total=len(items), initial=state.done, unit="img", file=sys.stderr, disable=not progress, mininterval=1.0)
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers or len(os.sched_getaffinity(0)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(
            os.getpid(),
            tuple(tools),
            settings.max_pixels,
            settings.hashing,
            settings.decode_memory_mb << 20,
            settings.max_upload_bytes,
            frozenset(h.lower() for h in hosts),
        ),
    )
    try:
        batches = _batches(items[state.done :], batch)
        pending = [pool.submit(_hash, item) for item in next(batches, [])]
        while pending:
            # Hash the next batch while this one is looked up.
            following = [pool.submit(_hash, item) for item in next(batches, [])]
            hashed = [f.result() for f in pending]
            ok = [h for h in hashed if h.error is None]
            answers = service.lookup(ok) if ok else []
            for h, answer in zip(ok, answers, strict=True):
                for m in answer.get("matches", []) if answer["verdict"] == "match" else []:
                    matches.writerow(
                        [
                            h.item.key,
                            h.item.location,
                            m["hashset"],
                            m["hashset_version"],
                            m["entry_id"],
                            m["tool"],
                            m["tool_version"],
                            answer.get("ticket_id") or "",
                            answer["scan_id"],
                        ]
                    )
                state.matched += answer["verdict"] == "match"
            for h in hashed:
                if h.error is not None:
                    errors.writerow([h.item.key, h.item.location, *h.error])
                    state.failed += 1
            state.matches_bytes, state.errors_bytes = _durable(matches_file), _durable(errors_file)
            state.done += len(hashed)
            state.last_key = hashed[-1].item.key
            state.save(checkpoint_path)
            bar.update(len(hashed))
            pending = following
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
        matches_file.close()
        errors_file.close()
    return Outcome(items=len(items), done=state.done, matched=state.matched, failed=state.failed)


def _batches(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# ---------------------------------------------------------------- command line


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "backfill",
        help="hash an existing catalogue (a folder, or a file of paths and URLs) and look it up; matches to a CSV",
        description=(__doc__ or "").split("\n\n")[1].strip(),
    )
    parser.add_argument("source", type=Path, help="a folder, or a text file with one path or http(s) URL per line")
    parser.add_argument("--url", required=True, help="the hashguard service, e.g. http://hashguard.hashguard.svc")
    parser.add_argument("--key-file", type=Path, help=f"a file holding the platform key (default: ${KEY_VARIABLE})")
    parser.add_argument("--out", type=Path, required=True, help="the CSV of matches (errors go beside it, NAME.errors.csv)")
    parser.add_argument("--checkpoint", type=Path, help="where progress is kept (default: OUT.checkpoint.json)")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), help="hash only shard i of n (e.g. 3/8); default 0/1")
    parser.add_argument("--workers", type=int, help="hashing processes (default: the CPUs available)")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"items per lookup (1..{BATCH}; default {BATCH})")
    parser.add_argument(
        "--tool", action="append", help="hash with this tool (repeatable; default: HASHGUARD_TOOLS, or every installed tool)"
    )
    parser.add_argument("--allow-host", action="append", default=[], help="a host URLs may be fetched from (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    if not 1 <= args.batch <= BATCH:
        raise BackfillError(f"--batch must be between 1 and {BATCH}")
    if args.workers is not None and args.workers < 1:
        raise BackfillError("--workers must be at least 1")
    if args.key_file is not None:
        try:
            key = args.key_file.read_text().strip()
        except OSError as exc:
            raise BackfillError(f"cannot read the key file {args.key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        raise BackfillError(f"no platform key: give --key-file or set {KEY_VARIABLE}")
    if not args.source.exists():
        raise BackfillError(f"the catalogue {args.source} does not exist")
    settings = Settings.from_env()
    tools = args.tool or list(settings.tools) or ToolRegistry.load().names()
    ToolRegistry.load(tools)  # an unknown tool fails here, before any work
    outcome = run(
        source=args.source,
        service=Service(url=args.url, key=key),
        out=args.out,
        checkpoint_path=args.checkpoint or args.out.with_name(args.out.name + ".checkpoint.json"),
        tools=tools,
        shard=args.shard,
        workers=args.workers,
        batch=args.batch,
        hosts=args.allow_host,
        settings=settings,
        progress=not args.quiet,
    )
    print(
        f"backfill: {outcome.done} of {outcome.items} items looked up (shard {args.shard[0]}/{args.shard[1]}):"
        f" {outcome.matched} matched, {outcome.failed} could not be hashed; matches in {args.out}"
    )
    return 0
