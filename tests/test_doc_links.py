"""The documentation's links resolve: every relative link in the README, docs/ and the shipped cards names a file that
exists and, where it names a section, a heading of that file (GitHub's anchors). Sections move between the README and
docs/ as they grow; a link left behind fails here, not in a reader's browser."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text without links' targets and code marks, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings (a repeated one numbered as GitHub numbers it), outside code blocks."""
    out, seen, code = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        code ^= line.startswith("```")
        heading = None if code else re.match(r"^#{1,6}\s+(.*)", line)
        if heading:
            name = anchor(heading.group(1))
            out.add(name if name not in seen else f"{name}-{seen[name]}")
            seen[name] = seen.get(name, 0) + 1
    return out


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    out = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        for m in LINK.finditer(text):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, section = target.partition("#")
            dest = (f.parent / path).resolve() if path else f
            where = f"{f.relative_to(root)}:{text[: m.start()].count(chr(10)) + 1}"
            if not dest.exists():
                out.append(f"{where}: {target} (no such file)")
            elif section and dest.suffix == ".md" and section not in anchors(dest):
                out.append(f"{where}: {target} (no such section)")
    return out


def test_every_link_of_the_documentation_resolves():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "checkpoints").glob("*/README.md"))]
    assert len(files) > 5
    assert broken_links(files) == []


def test_a_link_to_a_missing_section_or_file_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text("# X\n## Step 7: the `decoder`, again\n## Step 7: the `decoder`, again\n")
    (tmp_path / "README.md").write_text("[a](docs/x.md#step-7-the-decoder-again-1) [b](docs/x.md#step-8) [c](docs/y.md) "
                                        "[d](https://example.org/#z) [e](#nowhere)\n```\n# not a heading\n```\n")  # fmt: skip
    found = broken_links([tmp_path / "README.md"], tmp_path)
    assert found == ["README.md:1: docs/x.md#step-8 (no such section)", "README.md:1: docs/y.md (no such file)",
                     "README.md:1: #nowhere (no such section)"]  # fmt: skip
