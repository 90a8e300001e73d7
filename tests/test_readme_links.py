"""Messages that send a user to the README name a section it has (one named a section that was gone)."""

from __future__ import annotations

import re

from app.emotions import REPO_ROOT

#: How a message points to a README section: README: "its heading".
POINTER = re.compile(r'README: "([^"]+)"')


def test_every_readme_section_a_message_names_exists() -> None:
    headings = {
        line.lstrip("#").strip()
        for line in (REPO_ROOT / "README.md").read_text().splitlines()
        if line.startswith("## ")
    }
    sources = [path for folder in ("app", "pages", "training") for path in (REPO_ROOT / folder).rglob("*.py")]
    named = {(path.name, section) for path in sources for section in POINTER.findall(path.read_text())}

    assert named, "no message points to the README any more: this test has nothing to check"
    assert {(name, section) for name, section in named if section not in headings} == set()
