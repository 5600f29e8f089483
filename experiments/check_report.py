"""Check a results page against the run that wrote it (used by CI after ``reproduce --quick``).

    python -m experiments.check_report [runs/]

Fails (exit 1, one line per problem) unless every figure the page links to exists, every number
recorded in ``report_sources.json`` re-derives from its JSON file to exactly the text on the
page, and every decimal number on the page is one of those recorded numbers.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from experiments import _cli
from experiments.report import lookup, render

DECIMAL = re.compile(r"(?<![\w.§])-?\d+\.\d+(?:e[+-]\d+)?(?![\w.])")


def check(out: Path) -> list[str]:
    """Problems found in ``out/report.md`` (empty when the page is true to its JSON)."""
    out = Path(out)
    page = (out / "report.md").read_text()
    try:
        sources = json.loads((out / "report_sources.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{out / 'report_sources.json'} is not valid JSON ({err}); rebuild the page") from None
    problems = []
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):
        if not (out / link).is_file():
            problems.append(f"missing figure {link}")
    cache: dict[str, dict] = {}
    for src in sources:
        path = out / src["file"]
        if src["file"] not in cache:
            try:
                cache[src["file"]] = json.loads(path.read_text()) if path.is_file() else None
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON ({err}); rerun that experiment") from None
        if cache[src["file"]] is None:
            problems.append(f"{src['file']} is missing")
            continue
        try:
            text = render(src["format"], lookup(cache[src["file"]], src["path"]))
        except (KeyError, IndexError, TypeError, ValueError) as err:
            problems.append(f"{src['file']}:{'/'.join(map(str, src['path']))} cannot be read: {err!r}")
            continue
        if text != src["text"]:
            problems.append(f"{src['file']}:{'/'.join(map(str, src['path']))} is {text}, the page says {src['text']}")
        elif text not in page:
            problems.append(f"{text} ({src['file']}:{'/'.join(map(str, src['path']))}) is not on the page")
    recorded = set()
    for src in sources:
        recorded.update(DECIMAL.findall(src["text"]))
    for number in DECIMAL.findall(page):
        if number not in recorded:
            problems.append(f"the page says {number}, which comes from no JSON")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser("check_report", __doc__)
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs"),
                        help="the folder the main job wrote (default: runs/)")
    out = parser.parse_args(sys.argv[1:] if argv is None else argv).out
    if not out.is_dir():
        raise _cli.UsageError(f"{out} is not a folder; give the folder `python -m experiments.reproduce` wrote")
    for name in ("report.md", "report_sources.json"):
        if not (out / name).is_file():
            raise _cli.UsageError(f"{out / name} is missing; build the page with `python -m experiments.reproduce "
                                  f"--out {out}` (or `python -m experiments.report {out}`)")
    with _cli.user_errors():
        problems = check(out)
    for p in problems:
        print(f"check_report: {p}")
    print(f"check_report: {out / 'report.md'}: " + ("OK" if not problems else
                                                    f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"))
    return 1 if problems else 0


if __name__ == "__main__":
    _cli.run_as_command(main, "check_report")
