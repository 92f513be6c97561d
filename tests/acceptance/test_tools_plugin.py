"""The proof that tools are pluggable: a third-party distribution, built and pip-installed here
from its own pyproject.toml, scans in hashguard after an approval is recorded — with no change
to hashguard's code.

The distribution is installed with ``pip install --target`` into a temporary folder put on the
PYTHONPATH of the hashguard processes, not into the test virtualenv itself: a test that dies
half-way cannot leave a stray tool installed that would change every later test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.synthetic import draw, variant
from tests.conftest import Cli, Service
from tests.harness import free_port, make_list, scan

TOY_MODULE = '''
"""A toy third-party detection tool: the 8x8 average hash, written against hashguard's public interface only."""

from __future__ import annotations

from PIL import Image

from detector.decode import Media
from detector.tools.base import HashResult, HashTool, ToolKind


class AverageHashTool(HashTool):
    name = "ahash"
    version = "toy-ahash-1.0.0"
    kind = ToolKind.PERCEPTUAL
    bits = 64
    default_threshold = 8
    description = "Toy average hash (8x8 grey, bit = above the mean); a plug-in example, not for production."

    def hash(self, media: Media) -> HashResult:
        small = media.rgb().convert("L").resize((8, 8), Image.Resampling.BOX)
        pixels = list(small.getdata())
        mean = sum(pixels) / len(pixels)
        value = 0
        for p in pixels:
            value = (value << 1) | (p > mean)
        return HashResult(tool=self.name, value=value.to_bytes(8, "big"))
'''

TOY_PYPROJECT = """
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "hashguard-toy-ahash"
version = "1.0.0"
description = "A toy hashguard detection tool (test fixture)"

[project.entry-points."hashguard.tools"]
ahash = "hashguard_toy_ahash:AverageHashTool"

[tool.setuptools]
py-modules = ["hashguard_toy_ahash"]
"""


# Offline and into a folder: no index, no build isolation (the venv's own setuptools builds it).
PIP_OFFLINE = (sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index")


def with_path(env: dict[str, str], folder: Path) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH", "")) if p)}


@pytest.fixture
def toy_tool(tmp_path: Path) -> Path:
    """Build and install the toy distribution offline; return the folder it is installed in."""
    source = tmp_path / "toy-src"
    source.mkdir()
    (source / "pyproject.toml").write_text(textwrap.dedent(TOY_PYPROJECT))
    (source / "hashguard_toy_ahash.py").write_text(TOY_MODULE)
    target = tmp_path / "toy-installed"
    result = subprocess.run(
        [*PIP_OFFLINE, "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(p.name.startswith("hashguard_toy_ahash-1.0.0.dist-info") for p in target.iterdir())
    return target


def test_a_third_party_tool_scans_once_approved(
    toy_tool: Path, cli: Cli, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    toy_cli = Cli(with_path(cli.env, toy_tool))
    listed = toy_cli("tools", "list").stdout
    assert "ahash\ttoy-ahash-1.0.0\tperceptual\t64\t8\tno\tno_approval" in listed

    # The conformance kit, run the way a tool author would run it.
    kit = subprocess.run(
        [
            sys.executable,
            "-c",
            "from detector.tools.registry import ToolRegistry; from detector.tools.testing import"
            " assert_conforms; assert_conforms(ToolRegistry.load().get('ahash')); print('conforms')",
        ],
        env=toy_cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert kit.stdout.strip() == "conforms", kit.stderr

    approval_id = toy_cli(
        "tools",
        "approve",
        "ahash",
        "--authority",
        "Test Authority (not a real one)",
        "--jurisdiction",
        "XX",
        "--instrument",
        "test notice",
        "--versions",
        ">=1.0,<2",
        "--scope",
        "csam_known",
    ).stdout.splitlines()[0]
    hashes = make_list(toy_cli, tmp_path / "pictures", tool="ahash")
    imported = toy_cli(
        "hashsets", "import", str(tmp_path / "pictures" / "list.csv"), "--name", "toy-list", "--tool", "ahash", "--allow-unsigned"
    )
    assert "imported 5 ahash entries" in imported.stdout

    service = start_service(allow_tools=False, HASHGUARD_JURISDICTIONS="XX", PYTHONPATH=toy_cli.env["PYTHONPATH"])
    key = cli.new_key()
    verdict = scan(service, key, variant(draw(13), scale=0.5, quality=60)).json()
    assert verdict["verdict"] == "match", verdict
    [match] = verdict["matches"]
    assert (match["tool"], match["tool_version"], match["entry_id"]) == ("ahash", "toy-ahash-1.0.0", "entry-13")
    assert (match["approval_id"], match["approval_reason"]) == (int(approval_id), "approved")
    assert scan(service, key, variant(draw(999))).json()["verdict"] == "no_match"
    looked_up = service.post_json("/v1/lookup", {"content_id": "c", "hashes": {"ahash": hashes[11]}}, key).json()
    assert looked_up["matches"][0]["entry_id"] == "entry-11"
    ready = service.request("GET", "/readyz").json()
    assert {t["tool"]: t["active"] for t in ready["tools"]} == {
        "ahash": True,
        "dhash": False,
        "md5": False,
        "pdq": False,
        "phash": False,
        "sha256": False,
        "vpdq": False,
    }


def test_two_tools_with_one_name_stop_the_start(cli: Cli, tmp_path: Path) -> None:
    # A distribution that registers a second 'pdq' (only its metadata is needed to be discovered).
    dist = tmp_path / "dup" / "hashguard_dup-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hashguard-dup\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hashguard.tools]\npdq = detector.tools.pdq:PdqTool\n")
    env = with_path(cli.env, tmp_path / "dup")
    listed = Cli(env)("tools", "list", check=False)
    assert listed.returncode == 1 and "two installed tools are named 'pdq'" in listed.stderr
    serve = subprocess.run(
        [sys.executable, "-m", "hashguard.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode == 1
    assert "hashguard: error:" in serve.stderr and "pdq" in serve.stderr and "Traceback" not in serve.stderr
