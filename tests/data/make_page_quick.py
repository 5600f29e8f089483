"""Rewrite ``tests/data/page_quick`` (the golden page of tests/test_pages.py) from a quick ``--all`` run.

    python -m experiments.reproduce --all --quick --out /tmp/page_quick_run
    python -m tests.data.make_page_quick /tmp/page_quick_run

Copies every experiment's ``metrics.json`` (both draws, and the variants' own), then writes the page
(``report.md``) and every docs block (``blocks.json``) from the copy, as the tests do. Run it only when
a change of the page or the blocks is intended; the diff of ``report.md`` shows what changed.
"""

import json
import shutil
import sys
from pathlib import Path

from experiments.report import Page, write_report
from experiments.report_docs import BLOCKS

GOLDEN = Path(__file__).parent / "page_quick"


def main(run: Path) -> None:
    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    for src in sorted(run.glob("*/metrics.json")) + sorted(run.glob("*/*/metrics.json")):
        dst = GOLDEN / src.relative_to(run)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    work = GOLDEN.parent / "page_quick.tmp"
    shutil.copytree(GOLDEN, work)
    try:
        write_report(work, quick=True, tier="all")
        shutil.copyfile(work / "report.md", GOLDEN / "report.md")
        blocks = {}
        for name, block in BLOCKS.items():
            page = Page(work)
            block(page)
            blocks[name] = "\n".join(page.lines)
        (GOLDEN / "blocks.json").write_text(json.dumps(blocks, indent=1) + "\n")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
