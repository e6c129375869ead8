"""`mkdocs build --strict` of the documentation site (mkdocs.yml, docs/, docs/hooks.py).

The site is built into a temporary folder, from another working directory, so that the build
neither depends on where it runs nor writes into the source tree. Strict mode turns every warning
into a failure: a link to a page or an anchor that does not exist, a snippet file that is missing.
The checks below are what a reader of the built site would see: every destination type has its
page, made from its instructions.md; the code shown is the code the tests run; the API reference
lists every operation and schema of the server's OpenAPI document (waypost/api/openapi.yaml).
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DESTINATIONS = REPO / "waypost" / "destinations"
SNIPPETS = REPO / "docs" / "snippets"


def _source_tree() -> dict[str, int]:
    """Every file of the tree outside .venv and .git and caches, with its modification time."""
    skip = {".venv", ".git", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache"}
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        for name in files:
            path = Path(root) / name
            found[str(path.relative_to(REPO))] = path.stat().st_mtime_ns
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    before = _source_tree()
    out = tmp_path_factory.mktemp("site")
    config, target = str(REPO / "mkdocs.yml"), str(out / "html")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", target],
        cwd=out,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert _source_tree() == before, "the build changed files of the source tree"
    return out / "html"


def _text(page: Path) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, spaces collapsed."""
    raw = page.read_text("utf-8")
    article = raw[raw.index("<article") : raw.index("</article>")]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", article)).split())


def _code_blocks(page: Path) -> list[str]:
    """The text of each highlighted code block of the page."""
    raw = page.read_text("utf-8")
    blocks = re.findall(r"<pre[^>]*><span></span><code>(.*?)</code></pre>", raw, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks]


def test_every_destination_type_has_a_page_made_from_its_instructions(site: Path) -> None:
    folders = sorted(p.parent.name for p in DESTINATIONS.glob("*/instructions.md"))
    assert len(folders) >= 11
    overview = _text(site / "destinations" / "index.html")
    for name in folders:
        meta = json.loads((DESTINATIONS / name / "metadata.json").read_text())
        page = _text(site / "destinations" / name / "index.html")
        assert page.startswith(meta["label"]), page[:80]
        assert meta["label"] in overview
        instructions = (DESTINATIONS / name / "instructions.md").read_text()
        # the first paragraph after the title, as the reader sees it (markup dropped)
        paragraph = instructions.split("\n\n")[1]
        plain = " ".join(re.sub(r"[*`]", "", paragraph).split())
        assert plain[:60] in page, (name, plain[:60])
        for field in meta["config_fields"] + meta["credential_fields"]:
            assert field["key"] in page, (name, field["key"])


def test_the_code_shown_is_the_code_the_tests_run(site: Path) -> None:
    shown = {
        "receiving-webhooks": ["receiver.py", "receiver.mjs", "receiver.go"],
        "quickstart": ["quickstart.sh", "quickstart.py"],
    }
    for page, files in shown.items():
        blocks = _code_blocks(site / page / "index.html")
        for name in files:
            # Markdown expands tabs (Go's indentation) to four spaces; nothing else changes
            source = (SNIPPETS / name).read_text().expandtabs(4)
            assert source.rstrip("\n") in [b.rstrip("\n") for b in blocks], (page, name)


def test_api_reference_lists_every_operation_and_schema(site: Path) -> None:
    document = yaml.safe_load((REPO / "waypost" / "api" / "openapi.yaml").read_text())
    page = _text(site / "api" / "index.html")
    for path, item in document["paths"].items():
        for method in item:
            if method in ("get", "put", "post", "patch", "delete"):
                assert f"{method.upper()} {path}" in page
    for schema in document["components"]["schemas"]:
        assert f'id="schema-{schema.lower()}"' in (site / "api" / "index.html").read_text()
    assert "not an Outpost operation" in page  # the extensions are marked
    # the document itself is part of the site, as the page links it
    assert yaml.safe_load((site / "openapi.yaml").read_text()) == document


def test_readme_is_the_home_page_with_its_links_resolved(site: Path) -> None:
    home = (site / "index.html").read_text()
    assert "Set up" in _text(site / "index.html")
    # the README's links into docs/ point at the site's pages, not at repository paths
    assert 'href="configuration/"' in home
    assert 'href="docs/' not in home
    assert 'href="benchmarks/"' in home
    # and the contract's links to the README point at the home page
    contract = (site / "contract" / "index.html").read_text()
    assert "README.md" not in re.findall(r'href="([^"]*)"', contract)
    assert 'href="../#configuration"' in contract


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_links_to_repository_files_outside_the_site() -> None:
    """A page of docs/ may link to any repository file (../README.md, ../pyproject.toml): the
    README becomes the home page, another file its path (or a link into `repo_url` when
    mkdocs.yml sets one), and a file that does not exist stays a link, which strict mode fails."""
    hooks = _hooks()
    text = (
        "[the README](../README.md#configuration), [the project](../pyproject.toml), "
        "[gone](../nope.yaml), ![a shot](screenshots/guide.png), [`scripts/`](../scripts)"
    )

    def relink(repo_url: str | None) -> str:
        return str(hooks._LINK.sub(lambda m: hooks._relink(m, "docs/x.md", "x.md", repo_url), text))

    assert relink(None) == (
        "[the README](index.md#configuration), the project (`pyproject.toml` in the repository), "
        "[gone](../nope.yaml), ![a shot](screenshots/guide.png), `scripts/`"
    )
    assert "[the project](https://example.org/o/r/blob/main/pyproject.toml)" in relink(
        "https://example.org/o/r/"
    )
