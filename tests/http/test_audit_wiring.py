"""Changes made in the hashsets context and the tool registry land in the takedown context's
hash-chained audit log, which every context appends to directly (kernel/auditlog.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.http.inprocess import Cli


def test_list_and_tool_changes_are_in_the_audit_chain(cli: Cli, tmp_path: Path) -> None:
    value = "ab" * 32
    (tmp_path / "list.csv").write_text(f"id,hash\nx1,{value}\n")
    cli("hashsets", "import", str(tmp_path / "list.csv"), "--name", "audited", "--tool", "pdq", "--allow-unsigned")
    cli("hashsets", "status", "audited", "shadow", "--reason", "trying it first")
    cli("tools", "allow-local", "pdq", "--reason", "local test")
    entries = [json.loads(line) for line in cli("audit", "show").stdout.splitlines()]
    actions = [(e["action"], e["subject"]) for e in entries]
    assert ("hashset.import", "hashset:audited") in actions
    assert ("hashset.status", "hashset:audited") in actions
    assert any(action.startswith("tool.") and subject == "tool:pdq" for action, subject in actions)
    assert value not in json.dumps(entries)  # list entries stay confidential in the audit log too
    assert f"{len(entries)} entries" in cli("audit", "verify").stdout
