"""The results page: ``OUT/report.md`` built from the JSON files the experiments wrote.

Every number on the page is read from a JSON file under OUT through :meth:`Page.num`, which also
records where it came from in ``OUT/report_sources.json`` (file, key path, format); the tests
re-derive every recorded number from its JSON and check the page says exactly that. The report's
own published numbers are quoted from ``OUT/reference.json``, written here from :data:`REPORT`.
Every results file is checked against its schema when read (:mod:`experiments.schemas`). The text is
Jinja2 templates (``experiments/templates/*.md.j2``, :meth:`Page.render`); the wording rules
(:func:`span`, :func:`s_`) are its filters.

    python -m experiments.report [OUT] [--quick] [--tier report|all|only]   # rebuild OUT/report.md from its JSON

The page says which tier of the main job made it (``run.json``'s ``tier``): the report tier's page
holds the report's experiments and lists what ``--all`` adds; the ``--all`` and ``--only`` pages
hold every experiment found under OUT.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from experiments import schemas
from rnnjax.io import atomic_write_text, write_json

# What the report (§3, §5; restated in docs/report_restated.md) published: quoted, not measured.
REPORT = {
    "experiment1": {"rmse": 136.39, "mae": 135.67, "price_range_low": 220, "price_range_high": 540},
    "experiment2": {
        "0.9": "the norm falls below 1 and keeps falling (vanishing)",
        "0.99": "hovers near 10^1 (near stable)",
        "1.2": "grows past about 2x10^1 (exploding)",
    },
}


MISSING = "n/a"  # how the page shows a value a run could not give (null in its JSON: it went non-finite)


def render(fmt: str, value) -> str:
    """``fmt.format(value)``, or :data:`MISSING` for a null value (never a crash, never "None")."""
    return MISSING if value is None else fmt.format(value)


def lookup(obj, path):
    """``obj[path[0]][path[1]]...`` (list indices as ints)."""
    for key in path:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    return obj


class NotInRun(LookupError):
    """A page read the results of an experiment its run did not include (the report tier has no extended study)."""


class Page:
    """Markdown lines plus the provenance of every number written through :meth:`num`."""

    def __init__(self, out: Path, stages=None):
        self.out = Path(out)
        self.stages = None if stages is None else frozenset(stages)  # the experiments shown; None: all under OUT
        self.lines: list[str] = []
        self.sources: list[dict] = []
        self._cache: dict[str, dict] = {}
        self.last: str | None = None  # the JSON file read last: what a missing key is reported against

    def json(self, file: str) -> dict:
        """JSON ``file`` (relative to OUT); :class:`NotInRun` for an experiment this page does not show."""
        if "/" in file and not self.shows(file.split("/")[0]):
            raise NotInRun(f"{file}: {file.split('/')[0]} is not part of this run")
        self.last = file
        if file not in self._cache:
            self._cache[file] = schemas.load(self.out / file)  # checked against its schema: one clear error
        return self._cache[file]

    def has(self, file: str) -> bool:
        """Whether ``file`` exists and belongs to an experiment this page shows."""
        return self.shows(file.split("/")[0]) and (self.out / file).is_file()

    def shows(self, stage: str) -> bool:
        return self.stages is None or stage in self.stages

    def num(self, file: str, *path, fmt: str = "{:.2f}") -> str:
        """The value at ``path`` in JSON ``file`` (relative to OUT), formatted, with its source recorded."""
        text = render(fmt, lookup(self.json(file), path))
        self.sources.append({"text": text, "file": file, "path": list(path), "format": fmt})
        return text

    def reader(self, file: str, *prefix, fmt: str = "{:.2f}"):
        """``num`` bound to one JSON file (and a key prefix): ``n = page.reader(f); n("rmse")``. A value that
        may be null reads as ``missing`` with ``n(..., missing="—")`` (nothing is recorded then);
        ``n.get(*path)`` is the raw value, for decisions about the wording (nothing is recorded); ``fmt`` is the
        format of a number read without one."""
        get = lambda *path: lookup(self.json(file), (*prefix, *path))

        default = fmt

        def n(*path, fmt=default, missing=None):
            if missing is not None and get(*path) is None:
                return missing
            return self.num(file, *prefix, *path, fmt=fmt)
        n.get = get
        return n

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def render(self, template: str, **context) -> None:
        """Add the lines of ``templates/<template>`` rendered with ``context`` (and ``page``: this page)."""
        text = ENV.get_template(template).render(page=self, **context)
        self.add(*text.removesuffix("\n").split("\n"))  # a line per line of the text (a last blank line: "")

    def figure(self, folder: str, name: str, caption: str) -> None:
        """An image link (relative to the page) and its two-line reading."""
        self.add(f"![{name}]({folder}/{name})", "", caption, "")


TIERS = ("report", "all", "only")
TEMPLATES = Path(__file__).parent / "templates"  # the page's and the docs' text: ``*.md.j2``, Jinja2


def span(lo: str, hi: str, sep: str = "–") -> str:
    """``"lo–hi"``, or one value when both ends read the same ("31", not "31–31")."""
    return lo if lo == hi else f"{lo}{sep}{hi}"


def s_(count) -> str:
    """The plural ending for ``count`` things: ``seed{{ k | s_ }}`` -- "1 seed", "4 seeds"."""
    return "" if count == 1 else "s"


def _environment():
    """The templates' Jinja2 environment: text kept as written (a line holding only a block tag is dropped), an
    undefined name an error, and the wording rules as filters (:func:`span`, :func:`s_`)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(span=span, s_=s_)
    env.globals.update(verb={"vanishing": "vanish", "exploding": "explode"})  # "all three rho vanish"
    return env


ENV = _environment()


def write_report(out: Path, *, quick: bool = False, tier: str | None = None) -> Path:
    """Build ``out/report.md`` (and ``report_sources.json``) from the JSON under ``out``; ``tier`` (one of
    :data:`TIERS`, None: unstated) is what the main job ran; the report tier's page shows its experiments only."""
    from experiments.reproduce import REPORT_TIER

    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    out = Path(out)
    page = Page(out, stages=REPORT_TIER if tier == "report" else None)
    page._cache["reference.json"] = json.loads(json.dumps(REPORT))  # written with the page, below
    from experiments.reproduce import STAGES

    page.render("page_head.md.j2", quick=quick, tier=tier, extended=[s for s in STAGES if s.extended])
    from experiments import report_sections

    for section in report_sections.SECTIONS:
        try:
            section(page)
        except (KeyError, IndexError) as err:  # a results file of another version, or edited by hand
            what = f"has no key {err}" if isinstance(err, KeyError) else f"has a list too short ({err})"
            raise ValueError(f"{out / str(page.last)} {what}, which the page reads; rerun that experiment (the page "
                             "was not written)") from None
    write_json(out / "reference.json", REPORT)  # nothing is written until every section rendered
    atomic_write_text(out / "report.md", "\n".join(page.lines).rstrip() + "\n")
    write_json(out / "report_sources.json", page.sources)
    return out / "report.md"


def main(argv: list[str] | None = None) -> Path:
    from experiments import _cli

    parser = _cli.Parser("report", __doc__)
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs"),
                        help="the folder the main job wrote (default: runs/)")
    parser.add_argument("--quick", action="store_true", help="mark the page as a quick run's")
    parser.add_argument("--tier", choices=TIERS, default=None,
                        help="the main job's tier to state on the page (default: OUT/run.json's, if any)")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        raise _cli.UsageError(f"{args.out} is not a folder; give the folder `python -m experiments.reproduce` wrote")
    tier = args.tier
    if tier is None and (args.out / "run.json").is_file():
        tier = json.loads((args.out / "run.json").read_text()).get("tier")
    try:
        with _cli.user_errors():
            page = write_report(args.out, quick=args.quick, tier=tier)
    except (KeyError, IndexError) as err:  # a JSON file of another shape than its experiment writes
        raise _cli.UsageError(f"{args.out}: a metrics.json the page reads lacks the entry {err}; rerun the "
                              f"experiment that wrote it (python -m experiments.reproduce --only NAME)") from err
    print(f"report: wrote {page}")
    return page


if __name__ == "__main__":
    from experiments import _cli

    _cli.run_as_command(main, "report")
