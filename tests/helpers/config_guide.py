"""The example configs of docs/configs.md, each under the file name its first line gives."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.paths import REPO

GUIDE = REPO / "docs" / "configs.md"


def examples(guide: Path = GUIDE) -> dict[str, str]:
    """The guide's ```yaml blocks by the file name on their first line (# <name>)."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", guide.read_text(), re.M | re.S)
    files = {}
    for block in blocks:
        first, _, _ = block.partition("\n")
        assert re.fullmatch(r"# [\w.-]+\.yaml", first), f"an example must name its file first: {first!r}"
        files[first[2:]] = block
    assert len(files) == len(blocks), "two examples name the same file"
    return files
