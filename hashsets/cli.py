"""``hashguard hashsets ...``: import, versions, trust, the false-positive defences, feedback, export.

Registered into the main parser by ``hashguard.cli`` through ``register(subparsers)``. Every
command that changes a list records who did it (``--actor``, default: the login name) in
``hashset_events``. No command prints a hash value except ``export``, which needs an admin key.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from detector.tools.base import HashTool, IndexKind, ToolKind
from detector.tools.registry import ToolRegistry, ToolRegistryError
from hashsets import allowlist, entries, events, feedback, lists, quarantine, signing, trusted_keys, uploads
from hashsets.errors import HashsetError, NotPermitted
from hashsets.files import ListFile, verifier
from hashsets.manifest import Kind, Manifest, build_manifest, parse_manifest, sign_manifest, verify_signature
from hashsets.parse import ListFormat, parse_blocks, parse_scheme
from hashsets.progress import Progress
from hashsets.video_files import VideoListFile
from kernel import keystore
from kernel.commandline import invoking_user, run_with_connection
from kernel.keys import Role, key_digest, parse_bearer
from kernel.settings import Settings

if TYPE_CHECKING:  # the driver's types only: this module does no SQL itself
    import asyncpg

T = TypeVar("T")


_run = run_with_connection


def _actor(args: argparse.Namespace) -> str:
    return invoking_user(args.actor)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


# --- import ---------------------------------------------------------------------------------


def _load_manifest(path: str) -> Manifest:
    try:
        return parse_manifest(Path(path).read_bytes())
    except OSError as exc:
        raise HashsetError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None


def _agree(flag: str, given: str | None, manifest_value: str) -> None:
    if given is not None and given != manifest_value:
        raise HashsetError(f"--{flag} {given!r} contradicts the manifest ({manifest_value!r}); drop the flag")


def _list_threshold(name: str) -> int | None:
    return _run(lambda conn: lists.get_hashset(conn, name)).threshold


def _hex_width(tool: HashTool) -> int | None:
    """The hash width for the fast column path, if the tool reads plain hex like the base class
    (a plug-in that normalises or validates its own way goes line by line, through its methods)."""
    kind = type(tool)
    plain = all(getattr(kind, m) is getattr(HashTool, m) for m in ("parse_hex", "normalise", "validate"))
    return tool.width if plain else None


def _list_file(tool: HashTool, path: Path, progress: Progress | None = None) -> ListFile | VideoListFile:
    """The list file reader for the tool: a video tool's (vPDQ) reads hash files, folders and JSON Lines."""
    return VideoListFile(path, progress) if tool.index_kind() is IndexKind.FRAMES else ListFile(path, progress)


def cmd_import(args: argparse.Namespace) -> int:
    manifest = _load_manifest(args.manifest) if args.manifest else None
    if manifest is None and not args.allow_unsigned:
        raise HashsetError(
            "a list needs a signed manifest (--manifest FILE); to import it without one, and record it as unsigned,"
            " add --allow-unsigned"
        )
    if manifest is not None:
        _agree("name", args.name, manifest.list)
        _agree("tool", args.tool, manifest.tool)
        _agree("source", args.source, manifest.issuer)
        _agree("kind", args.kind, manifest.kind.value)
        name, tool_name, source, kind = manifest.list, manifest.tool, manifest.issuer, manifest.kind
    else:
        if not args.name or not args.tool:
            raise HashsetError("without a manifest, say --name and --tool")
        name, tool_name, source, kind = args.name, args.tool, args.source or "", Kind(args.kind or "full")
    tool = ToolRegistry.load().get(tool_name)
    fmt = ListFormat(args.format) if args.format else manifest.format if manifest else None
    scheme = parse_scheme(args.classification) if args.classification else manifest.classification if manifest else None
    path = Path(args.file)
    progress = Progress(path.stat().st_size if path.is_file() else 0, label=f"importing {name}") if not args.quiet else None
    file = _list_file(tool, path, progress)
    fmt = ListFormat.JSONL if tool.index_kind() is IndexKind.FRAMES else fmt
    blocks = parse_blocks(
        file.lines(), tool.parse_hex, width=_hex_width(tool), format=fmt, scheme=scheme, allow_retractions=kind is Kind.DELTA
    )
    actor = _actor(args)

    async def work(conn: asyncpg.Connection) -> lists.ImportResult:
        signer = None
        if manifest is not None and not (args.allow_unsigned and manifest.signature is None):
            signer = verify_signature(manifest, [k for k, *_ in await trusted_keys.trusted_keys(conn)])
        request = lists.ImportRequest(
            name=name,
            tool=tool.name,
            source=source,
            kind=kind,
            actor=actor,
            issuer_version=manifest.version if manifest else None,
            base_issuer_version=manifest.base_version if manifest else None,
            base_version=args.base_version,
            issued_at=manifest.created if manifest else None,
            signer=signer,
            manifest=manifest.raw if manifest else None,
            file_sha256=b"",
        )
        check = verifier(manifest, file) if manifest is not None else None
        # One transaction, so no replica ever matches a --no-dihedral list's new entries with the variants on.
        async with conn.transaction():
            imported = await lists.import_list(conn, request, blocks, check=check, file_digest=lambda: file.sha256)
            if args.no_dihedral:
                await lists.set_dihedral(conn, name, False, actor, "imported with --no-dihedral")
        return imported

    result = _run(work)
    if progress is not None:
        progress.finish(result.added + result.retracted)
    days = Settings.from_env().lookback_days
    # (Look-back compares single hashes; a video list waits for the next uploads instead.)
    if days > 0 and result.added and tool.index_kind() is not IndexKind.FRAMES:
        threshold = _list_threshold(name) if tool.kind is not ToolKind.CRYPTOGRAPHIC else 0

        async def look_back(conn: asyncpg.Connection) -> int:
            await uploads.purge_scan_hashes(conn, days)
            return await uploads.recheck(
                conn,
                result,
                tool=tool.name,
                tool_version=tool.version,
                width=tool.width,
                exact=tool.kind is ToolKind.CRYPTOGRAPHIC,
                threshold=threshold if threshold is not None else tool.threshold(),
                days=days,
            )

        found = _run(look_back)
        print(f"look-back: {found} match(es) found on re-check of content scanned in the last {days} day(s)")
    detail = f"{result.added} added, {result.retracted} retracted, " if result.kind == "delta" else ""
    print(
        f"imported {result.entries} {tool.name} entries into {result.hashset!r} as version {result.version}"
        f" ({result.kind}, {detail}{result.signature_status})"
    )
    return 0


# --- reading --------------------------------------------------------------------------------


def _coverage_gap(tool: str) -> bool:
    try:
        return tool not in ToolRegistry.load(Settings.from_env().tools).names()
    except ToolRegistryError:  # HASHGUARD_TOOLS names a tool that is not installed: nothing is matched
        return True


def cmd_list(args: argparse.Namespace) -> int:
    summaries = _run(lists.list_hashsets)
    print("name\ttool\tstatus\tversion\tentries\tsignature\timported\timported_by\tsource")
    for s in summaries:
        gap = " (coverage gap: no enabled tool)" if _coverage_gap(s.tool) else ""
        print(
            f"{s.name}\t{s.tool}\t{s.status}\t{s.version or '-'}\t{s.entry_count}\t{s.signature_status or '-'}"
            f"\t{_when(s.imported_at)}\t{s.imported_by or '-'}\t{s.source}{gap}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> tuple[Any, ...]:
        return (
            await lists.get_hashset(conn, args.name),
            await lists.list_versions(conn, args.name),
            await entries.list_disabled(conn, args.name),
            await quarantine.quarantined(conn, args.name),
            await lists.dihedral(conn, args.name),
        )

    summary, versions, disabled, quarantined, dihedral = _run(work)
    print(f"list:       {summary.name}{'  (demo)' if summary.is_demo else ''}")
    print(f"tool:       {summary.tool}")
    print(f"issuer:     {summary.source or '-'}")
    print(f"status:     {summary.status}")
    print(f"threshold:  {summary.threshold if summary.threshold is not None else 'tool default'}")
    print(f"dihedral:   {'on' if dihedral else 'off'} (mirrored and rotated copies {'match' if dihedral else 'do not match'})")
    print(f"current:    version {summary.version or '-'}, {summary.entry_count} entries")
    if _coverage_gap(summary.tool):
        print(f"coverage gap: {summary.entry_count} {summary.tool} entries, and no enabled tool computes {summary.tool} hashes")
    print("\nversion\tkind\tbase\tissuer_version\tissued\tsignature\tsigner\timported\timported_by\tentries\tadded\tretracted")
    for v in versions:
        print(
            f"{v.version}{' *' if v.current else ''}\t{v.kind}\t{v.base_version or '-'}\t{v.issuer_version or '-'}"
            f"\t{_when(v.issued_at)}\t{v.signature_status}\t{v.signer or '-'}\t{_when(v.imported_at)}\t{v.imported_by or '-'}"
            f"\t{v.entry_count}\t{v.added_count}\t{v.retracted_count}"
        )
    if disabled:
        print("\ndisabled entries:")
        for entry_id, reason, actor, at in disabled:
            print(f"  {entry_id}\t{_when(at)}\t{actor}\t{reason}")
    if quarantined:
        print("\nquarantined entries (matches go to review):")
        for entry_id, since, seen in quarantined:
            print(f"  {entry_id}\tsince {_when(since)}\t{seen} matches in the window")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    for at, actor, action, hashset, details in _run(lambda conn: events.events(conn, args.name)):
        print(f"{at.isoformat()}\t{actor}\t{action}\t{hashset or '-'}\t{details}")
    return 0


# --- changes --------------------------------------------------------------------------------


def cmd_rollback(args: argparse.Namespace) -> int:
    previous = _run(lambda conn: lists.rollback(conn, args.name, args.version, _actor(args)))
    print(f"{args.name!r}: version {args.version} is current again (was {previous})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    previous = _run(lambda conn: lists.set_status(conn, args.name, args.status, _actor(args), args.reason))
    print(f"{args.name!r}: status {previous} -> {args.status}")
    return 0


def cmd_threshold(args: argparse.Namespace) -> int:
    value: int | None = None if args.threshold == "default" else int(args.threshold)
    if value is not None and value < 0:
        raise HashsetError("a threshold is a number of bits, 0 or more")
    _run(lambda conn: lists.set_threshold(conn, args.name, value, _actor(args), args.reason))
    print(f"{args.name!r}: threshold {'tool default' if value is None else value}")
    return 0


def cmd_dihedral(args: argparse.Namespace) -> int:
    on = args.setting == "on"
    previous = _run(lambda conn: lists.set_dihedral(conn, args.name, on, _actor(args), args.reason))
    print(f"{args.name!r}: dihedral {'on' if previous else 'off'} -> {args.setting}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    _run(lambda conn: entries.disable_entry(conn, args.name, args.entry_id, args.reason, _actor(args)))
    print(f"{args.name!r}: entry {args.entry_id!r} disabled")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    _run(lambda conn: entries.enable_entry(conn, args.name, args.entry_id, args.reason, _actor(args)))
    print(f"{args.name!r}: entry {args.entry_id!r} enabled again")
    return 0


def cmd_allow(args: argparse.Namespace) -> int:
    tool = ToolRegistry.load().get(args.tool)
    # '-' reads the hash from stdin, so it need not sit in the shell history.
    text = sys.stdin.readline() if args.hash == "-" else args.hash
    value = tool.parse_hex(text)
    allow_id = _run(lambda conn: allowlist.allow(conn, tool.name, value, args.reason, _actor(args)))
    print(f"allow-list entry {allow_id} added for {tool.name}")
    return 0


def cmd_disallow(args: argparse.Namespace) -> int:
    _run(lambda conn: allowlist.disallow(conn, args.id, args.reason, _actor(args)))
    print(f"allow-list entry {args.id} removed")
    return 0


def cmd_allowed(args: argparse.Namespace) -> int:
    print("id\ttool\tadded\tby\treason")
    for a in _run(allowlist.list_allowed):
        print(f"{a.id}\t{a.tool}\t{_when(a.added_at)}\t{a.actor}\t{a.reason}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    _run(lambda conn: quarantine.release_quarantine(conn, args.name, args.entry_id, _actor(args), args.reason))
    print(f"{args.name!r}: entry {args.entry_id!r} released from quarantine")
    return 0


# --- trust and signing ----------------------------------------------------------------------


def cmd_trust(args: argparse.Namespace) -> int:
    key = signing.parse_public_key(args.public_key)
    fingerprint = signing.fingerprint(key)
    _run(lambda conn: trusted_keys.trust(conn, args.organisation, key, fingerprint, _actor(args)))
    print(f"trusted {fingerprint} for {args.organisation!r}")
    return 0


def cmd_distrust(args: argparse.Namespace) -> int:
    _run(lambda conn: trusted_keys.distrust(conn, args.organisation, args.fingerprint, _actor(args)))
    print(f"{args.fingerprint} is no longer trusted for {args.organisation!r}")
    return 0


def cmd_trusted(args: argparse.Namespace) -> int:
    print("organisation\tkey\tadded\tby")
    for key, fingerprint, actor, at in _run(trusted_keys.trusted_keys):
        print(f"{key.organisation}\t{fingerprint}\t{_when(at)}\t{actor}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    pair = signing.generate()
    path = Path(args.private_key)
    if path.exists():
        raise HashsetError(f"{path} exists; not overwriting a private key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_pem)
    print(pair.public_text)
    print(f"(private key written to {path}; trust the public key with: hashguard hashsets trust ORG KEY)", file=sys.stderr)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Write a signed manifest for a list file: count and checksum are computed from the file."""
    tool = ToolRegistry.load().get(args.tool)
    kind = Kind(args.kind)
    fmt = ListFormat(args.format) if args.format else None
    scheme = parse_scheme(args.classification) if args.classification else None
    file = _list_file(tool, Path(args.file))
    fmt = ListFormat.JSONL if tool.index_kind() is IndexKind.FRAMES else fmt
    count = sum(
        len(block)
        for block in parse_blocks(
            file.lines(), tool.parse_hex, width=_hex_width(tool), format=fmt, scheme=scheme, allow_retractions=kind is Kind.DELTA
        )
    )
    document = build_manifest(
        issuer=args.issuer,
        list_name=args.name,
        tool=tool.name,
        version=args.version,
        kind=kind,
        created=datetime.fromisoformat(args.created.replace("Z", "+00:00")) if args.created else datetime.now(UTC),
        entries=count,
        sha256=file.sha256,
        base_version=args.base_version,
        format=fmt,
        classification=scheme,
    )
    signed = sign_manifest(document, Path(args.key).read_bytes())
    text = json.dumps(signed, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


# --- feedback and export --------------------------------------------------------------------


def cmd_feedback(args: argparse.Namespace) -> int:
    rows = _run(lambda conn: feedback.feedback(conn, args.name))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["list", "entry_id", "added_in_version", "wrong_matches", "last_decided_at", "notes"])
    for f in rows:
        writer.writerow([args.name, f.entry_id, f.added_in_version, f.wrong_matches, f.last_decided_at.isoformat(), f.notes])
    return 0


async def _require_admin(conn: asyncpg.Connection, key: str | None) -> int:
    secret = parse_bearer(f"Bearer {key}") if key else None
    found = await keystore.find_key(conn, key_digest(secret)) if secret else None
    if found is None or found.role is not Role.ADMIN:
        raise NotPermitted("exporting list entries needs an admin key: set HASHGUARD_ADMIN_KEY to one")
    return found.key_id


def cmd_export(args: argparse.Namespace) -> int:
    """The only command that writes hash values: admin key required, recorded as an event."""
    tool = ToolRegistry.load()
    out_path = Path(args.out)
    if out_path.exists():
        raise HashsetError(f"{out_path} exists; not overwriting")

    async def work(conn: asyncpg.Connection) -> int:
        key_id = await _require_admin(conn, os.environ.get("HASHGUARD_ADMIN_KEY"))
        summary = await lists.get_hashset(conn, args.name)
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        count = 0
        with os.fdopen(fd, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["id", "hash", "category", "scheme"])
            formatter = tool.get(summary.tool).format if summary.tool in tool.names() else bytes.hex
            async with conn.transaction(readonly=True):
                async for entry_id, value, category, scheme in entries.export_entries(conn, args.name):
                    writer.writerow([entry_id, formatter(value), category or "", scheme or ""])
                    count += 1
        await events.record_event(
            conn, _actor(args), "export", args.name, {"version": summary.version, "entries": count, "api_key_id": key_id}
        )
        return count

    count = _run(work)
    print(f"exported {count} entries of {args.name!r} to {out_path} (mode 600)", file=sys.stderr)
    return 0


# --- wiring ---------------------------------------------------------------------------------


def _changer(parser: argparse.ArgumentParser, *, reason: bool = True) -> argparse.ArgumentParser:
    parser.add_argument("--actor", help="who makes the change, for the record (default: the login name)")
    if reason:
        parser.add_argument("--reason", required=True, help="why, for the record")
    return parser


def register(subparsers: Any) -> None:
    """Add ``hashguard hashsets ...`` to the main command line."""
    hashsets = subparsers.add_parser("hashsets", help="manage hash lists").add_subparsers(dest="hashsets_command", required=True)

    imp = _changer(
        hashsets.add_parser(
            "import",
            help="import a list version: CSV/TSV with a header (hash, id, category, scheme, op), JSON Lines, or one hex hash per line",
        ),
        reason=False,
    )
    imp.add_argument("file")
    imp.add_argument("--manifest", help="the issuer's signed manifest (JSON)")
    imp.add_argument("--allow-unsigned", action="store_true", help="import without a (signed) manifest, recorded as unsigned")
    imp.add_argument("--name", help="list name (from the manifest if given)")
    imp.add_argument("--tool", help="hash type: pdq, phash, md5, ... (from the manifest if given)")
    imp.add_argument("--source", help="the issuing organisation (from the manifest if given)")
    imp.add_argument("--kind", choices=[k.value for k in Kind], help="full (default) or delta")
    imp.add_argument("--base-version", type=int, help="unsigned delta: the hashguard version it applies to (default: current)")
    imp.add_argument("--format", choices=[f.value for f in ListFormat], help="default: from the manifest, else sniffed")
    imp.add_argument("--classification", help="the categories' scheme: iwf, ncmec, interpol or none (default: inferred)")
    imp.add_argument("--quiet", action="store_true", help="no progress output")
    imp.add_argument(
        "--no-dihedral",
        action="store_true",
        help="mirrored and rotated copies do not match this list (its issuer added their hashes already)",
    )
    imp.set_defaults(func=cmd_import)

    hashsets.add_parser("list", help="lists with their current versions").set_defaults(func=cmd_list)
    show = hashsets.add_parser("show", help="one list: versions, issuer, signatures, disabled and quarantined entries")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)
    events = hashsets.add_parser("events", help="the record of changes to lists and their defences")
    events.add_argument("name", nargs="?")
    events.set_defaults(func=cmd_events)

    rollback = _changer(hashsets.add_parser("rollback", help="make an earlier version current again"), reason=False)
    rollback.add_argument("name")
    rollback.add_argument("version", type=int)
    rollback.set_defaults(func=cmd_rollback)
    status = _changer(hashsets.add_parser("status", help="active, shadow (recorded and counted, never answered) or disabled"))
    status.add_argument("name")
    status.add_argument("status", choices=["active", "shadow", "disabled"])
    status.set_defaults(func=cmd_status)
    threshold = _changer(hashsets.add_parser("threshold", help="per-list distance threshold, or 'default' for the tool's"))
    threshold.add_argument("name")
    threshold.add_argument("threshold")
    threshold.set_defaults(func=cmd_threshold)
    dihedral = _changer(hashsets.add_parser("dihedral", help="whether mirrored and rotated copies match a list (on by default)"))
    dihedral.add_argument("name")
    dihedral.add_argument("setting", choices=["on", "off"])
    dihedral.set_defaults(func=cmd_dihedral)
    disable = _changer(hashsets.add_parser("disable", help="stop matching one entry"))
    disable.add_argument("name")
    disable.add_argument("entry_id")
    disable.set_defaults(func=cmd_disable)
    enable = _changer(hashsets.add_parser("enable", help="match a disabled entry again"))
    enable.add_argument("name")
    enable.add_argument("entry_id")
    enable.set_defaults(func=cmd_enable)
    release = _changer(hashsets.add_parser("release", help="release a quarantined entry: its matches are actioned again"))
    release.add_argument("name")
    release.add_argument("entry_id")
    release.set_defaults(func=cmd_release)

    allow = _changer(hashsets.add_parser("allow", help="allow-list a benign image's hash ('-': read it from stdin)"))
    allow.add_argument("tool")
    allow.add_argument("hash")
    allow.set_defaults(func=cmd_allow)
    disallow = _changer(hashsets.add_parser("disallow", help="remove an allow-list entry by id"))
    disallow.add_argument("id", type=int)
    disallow.set_defaults(func=cmd_disallow)
    hashsets.add_parser("allowed", help="the allow-list (ids and reasons, never hashes)").set_defaults(func=cmd_allowed)

    trust = _changer(
        hashsets.add_parser("trust", help="trust an Ed25519 public key (base64, hex or PEM) to sign ORG's lists"), reason=False
    )
    trust.add_argument("organisation")
    trust.add_argument("public_key")
    trust.set_defaults(func=cmd_trust)
    distrust = _changer(hashsets.add_parser("distrust", help="stop trusting a key (by its fingerprint)"), reason=False)
    distrust.add_argument("organisation")
    distrust.add_argument("fingerprint")
    distrust.set_defaults(func=cmd_distrust)
    hashsets.add_parser("trusted", help="trusted issuer keys").set_defaults(func=cmd_trusted)

    sign = hashsets.add_parser("sign", help="test and demo lists: make a key pair, sign a manifest").add_subparsers(
        dest="sign_command", required=True
    )
    keygen = sign.add_parser("keygen", help="write a new Ed25519 private key (PEM, mode 600) and print its public key")
    keygen.add_argument("private_key")
    keygen.set_defaults(func=cmd_keygen)
    manifest = sign.add_parser("manifest", help="write a signed manifest for a list file")
    manifest.add_argument("file")
    manifest.add_argument("--key", required=True, help="private key file (from 'sign keygen')")
    manifest.add_argument("--issuer", required=True)
    manifest.add_argument("--name", required=True)
    manifest.add_argument("--tool", required=True)
    manifest.add_argument("--version", required=True, help="the issuer's version label")
    manifest.add_argument("--kind", choices=[k.value for k in Kind], default="full")
    manifest.add_argument("--base-version", help="a delta's base (the issuer's version label)")
    manifest.add_argument("--format", choices=[f.value for f in ListFormat])
    manifest.add_argument("--classification")
    manifest.add_argument("--created", help="ISO 8601 time (default: now)")
    manifest.add_argument("--out", help="write here instead of stdout")
    manifest.set_defaults(func=cmd_sign)

    feedback = hashsets.add_parser("feedback", help="reviewers' wrong-match decisions per entry, as CSV for the issuer")
    feedback.add_argument("name")
    feedback.set_defaults(func=cmd_feedback)
    export = _changer(
        hashsets.add_parser(
            "export", help="write the current version's entries WITH hashes to a new file; needs HASHGUARD_ADMIN_KEY"
        ),
        reason=False,
    )
    export.add_argument("name")
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_export)
