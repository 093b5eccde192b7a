"""The documentation stays true to the code: the generated reference pages match what the
generator writes now, every relative link between pages resolves, and the README stays a
front page."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from markdown_it import MarkdownIt
from support import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
TEST_COMMAND = "python3.11 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test]' && .venv/bin/python -m pytest -q -n 4"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["reference/config.md", "reference/rest.md", "reference/keys.md"])
def test_generated_page_is_up_to_date(tmp_path: Path, page: str) -> None:
    generated = _generator().generate(tmp_path)[tmp_path / page]
    committed = (REPO / "docs" / page).read_text(encoding="utf-8")
    assert committed == generated, f"docs/{page} is out of date: run `python docs/generate.py`"


def test_config_reference_names_every_key_with_its_description() -> None:
    from engine.config.engine_settings import EngineSection

    text = _generator().config_reference()
    for name in EngineSection.model_fields:
        assert f"| `{name}` |" in text
    assert "Bytes of a request body the API accepts at most" in text  # a docstring under a field


def test_keys_reference_lists_every_action_id() -> None:
    from pulseguard_tui.actions import ACTIONS

    text = (REPO / "docs" / "reference" / "keys.md").read_text(encoding="utf-8")
    missing = [a.id for a in ACTIONS if f"`{a.id}`" not in text]
    assert not missing
    # Each screen's section says which screen and how to open it, not the scope's bare id.
    from pulseguard_tui.commands import COMMANDS

    for scope in dict.fromkeys(a.scope for a in ACTIONS):
        if scope in COMMANDS:
            assert f"(`:{scope}`)" in text, scope


def test_check_mode_names_a_stale_page_and_changes_nothing(tmp_path: Path) -> None:
    """`python docs/generate.py --check` on a copy of docs/ with one page edited exits 1, names
    it and leaves it as it was."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs")
    stale = copy / "docs" / "reference" / "keys.md"
    stale.write_text(stale.read_text(encoding="utf-8") + "\nedited by hand\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(copy / "docs" / "generate.py"), "--check"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    assert proc.returncode == 1, proc.stderr
    assert "docs/reference/keys.md" in proc.stderr
    assert stale.read_text(encoding="utf-8").endswith("edited by hand\n")


def _links(text: str) -> list[str]:
    found: list[str] = []

    def walk(tokens: list) -> None:  # type: ignore[type-arg]
        for tok in tokens:
            if tok.type in ("link_open", "image"):
                found.append(str(tok.attrs.get("href") or tok.attrs.get("src")))
            if tok.children:
                walk(tok.children)

    walk(MarkdownIt().parse(text))
    return found


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        for href in _links(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", href) or href.startswith("#"):
                continue
            target = (page.parent / href.split("#", 1)[0]).resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(REPO)}: {href}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_index() -> None:
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    linked = {(REPO / "docs" / h).resolve() for h in _links(index)}
    orphans = [str(p.relative_to(REPO)) for p in PAGES[1:] if p.name != "README.md" and p.resolve() not in linked]
    assert not orphans


def test_readme_is_a_front_page() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    assert TEST_COMMAND in text  # .ci/run runs this line
    assert "docs/console.svg" in text
