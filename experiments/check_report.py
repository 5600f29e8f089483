"""Check a results page, and the documentation's measured numbers, against the run that wrote them.

    python -m experiments.check_report [runs/]               # the page, and the docs against a full run
    python -m experiments.check_report runs/ --write-docs    # rewrite the docs' generated blocks from runs/

The page (``OUT/report.md``) fails unless every figure it links to exists, every number recorded in
``report_sources.json`` re-derives from its JSON file to exactly the text on the page, and every
decimal number on the page is one of those recorded numbers.

The documentation (``docs/*.md`` and the findings section of ``README.md``) holds its measured
numbers only inside generated blocks::

    <!-- generated: NAME -->
    ...text written by experiments/report_docs.py from the main job's JSON...
    <!-- /generated -->

Each block is regenerated from ``OUT``'s JSON (with the same provenance rule as the page) and must
equal the text in the file; ``--write-docs`` rewrites them. Outside the blocks (and outside code),
a decimal number must be a quoted or configured value: one of the report's own numbers
(``OUT/reference.json``), a value of some experiment's ``config``, or one of :data:`PROSE_CONSTANTS`.
After a ``--quick`` run the blocks are generated (so every key they read exists) but not compared.

``--write-docs`` also records the run's numerical environment (``run.json``'s ``environment``: versions,
the CPU's vector instructions, XLA flags) in ``docs/generated_from.json``. Float32 training does not
reproduce bit for bit across CPUs, so when blocks differ from a run made elsewhere the check says
so in a note (the differences are still listed, and still fail the check).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from experiments import _cli
from experiments.report import NotInRun, Page, lookup, render

# Every number of a block (thousands separators, signs, exponents), for the note on numbers that moved.
NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]?\d+)?")
VERDICT_KEYS = {"verdict", "verdict_vs_persistence", "trend", "bridgeable_delay", "best"}  # keys that hold a verdict
MOVED_SHOWN = 4  # moved numbers named per block in the note
# The images the docs show, and the run's file each one is (copied by --write-docs, compared by the check).
FIGURES = {"docs/figures/flossing_delay.png": "flossing/fig10_flossing_delay.png",
           "docs/figures/flossing_survival.png": "flossing/fig14_flossing_survival.png",
           "docs/figures/adding_survival.png": "remedies/fig9b_adding_survival.png"}
DECIMAL = re.compile(r"(?<![\w.§])-?\d+\.\d+(?:e[+-]\d+)?(?![\w.])")
BLOCK = re.compile(r"(<!-- generated: ([\w.\-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
ROOT = Path(__file__).resolve().parents[1]
PROVENANCE = "docs/generated_from.json"  # the numerical environment of the run the docs' blocks came from
DIFFERS = "differs from the run in"  # how a block that is not the run's text is reported
# Decimals that prose may state outside a generated block: constants of mathematics and of the
# methods, not measurements: sqrt 2 (the ReLU edge); 0.5 of the loss 0.5 (o - y)^2; NW 1994's
# Bartlett constant; 2.66 = 50^(1/4), the scale between the two readings of W_hh at H = 50;
# sigma(1) = 0.73 (the LSTM's initial forget gate); the trend threshold of 0.3 decade; the AR(1)
# coefficient 0.95 of the DM size simulation.
PROSE_CONSTANTS = {"1.41", "0.5", "1.1447", "2.66", "0.73", "0.3", "0.95"}
# Whole numbers prose may state besides settings and the data's description (each experiment's
# ``data``): the fox text's 27 characters, its 175 segments and the 25 read again; the 500 train
# closes kept for Figure 2's context; HTTP statuses 404 and 429; the T = 10,000 of the linear-RNN
# Lyapunov test. Also allowed: years, numbers up to 12 (counts and ordinals), and the number of a
# Figure, Table, issue or section.
PROSE_INTEGERS = {27, 175, 25, 500, 404, 429, 10_000}
INTEGER = re.compile(r"(?<![\w.§^/#,-])\d{1,3}(?:,\d{3})+(?![\w.%/,]\d)"  # 6,386
                     r"|(?<![\w.§^/#,-])\d+(?![\w.%/]|,\d)")  # 386
LABEL = re.compile(r"(?:Figures?|Table|issues?|Fig\.|§) ?$")
# A dated record of particular runs (e.g. two machines compared): quoted, not regenerated, not checked.
RECORD = re.compile(r"<!-- record: [^>]*-->\n.*?<!-- /record -->", re.S)


def _check_sources(out: Path, text: str, sources: list[dict], where: str) -> list[str]:
    """Every recorded number re-derives from its JSON and is in ``text``; every decimal in ``text`` is recorded."""
    problems, cache = [], {}
    for src in sources:
        path = out / src["file"]
        if src["file"] not in cache:
            try:
                cache[src["file"]] = json.loads(path.read_text()) if path.is_file() else None
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON ({err}); rerun that experiment") from None
        if cache[src["file"]] is None:
            problems.append(f"{where}: {src['file']} is missing")
            continue
        try:
            value = render(src["format"], lookup(cache[src["file"]], src["path"]))
        except (KeyError, IndexError, TypeError, ValueError) as err:
            problems.append(f"{where}: {src['file']}:{'/'.join(map(str, src['path']))} cannot be read: {err!r}")
            continue
        if value != src["text"]:
            problems.append(f"{where}: {src['file']}:{'/'.join(map(str, src['path']))} is {value}, "
                            f"the page says {src['text']}")
        elif value not in text:
            problems.append(f"{where}: {value} ({src['file']}:{'/'.join(map(str, src['path']))}) is not on the page")
    recorded = set()
    for src in sources:
        recorded.update(DECIMAL.findall(src["text"]))
    for number in DECIMAL.findall(text):
        if number not in recorded:
            problems.append(f"{where}: the page says {number}, which comes from no JSON")
    return problems


def check(out: Path) -> list[str]:
    """Problems found in ``out/report.md`` (empty when the page is true to its JSON)."""
    out = Path(out)
    page = (out / "report.md").read_text()
    try:
        sources = json.loads((out / "report_sources.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{out / 'report_sources.json'} is not valid JSON ({err}); rebuild the page") from None
    problems = [f"missing figure {link}" for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
                if not (out / link).is_file()]
    return problems + [p.removeprefix("report.md: ") for p in _check_sources(out, page, sources, "report.md")]


def doc_files(root: Path = ROOT) -> list[Path]:
    """The documentation whose numbers are checked: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _configured_values(out: Path) -> set[float]:
    """Numbers the prose may quote: the report's (reference.json) and every experiment's configuration."""
    values: set[float] = set()

    def walk(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        elif isinstance(obj, int | float) and not isinstance(obj, bool):
            values.add(round(float(obj), 10))

    if (out / "reference.json").is_file():
        walk(json.loads((out / "reference.json").read_text()))
    walk(_default_settings())  # the full run's settings, also where this run has not every experiment
    for metrics in out.glob("*/metrics.json"):
        m = json.loads(metrics.read_text())
        walk(m.get("config", {}))
        walk(m.get("data", {}))  # the data's description (rows, windows, closes): fixed by the data, not the run
    return values


def _default_settings() -> list:
    """Every number an experiment's command line takes by default (what the main job's full run uses)."""
    import importlib

    from experiments.reproduce import STAGES

    values = []
    for stage in STAGES:
        parser = importlib.import_module(f"experiments.{stage.name}").build_parser()
        values += [a.default for a in parser._actions if isinstance(a.default, int | float | list | tuple)]
    return values


README_FINDINGS = "## What the report claims, and what we measured"


def _checked_part(path: Path, text: str) -> str:
    """The text whose prose must hold no measured number: all of a docs page; of README.md its findings section
    (the rest of the README states benchmark timings of the development machine, not results of the main job)."""
    if path.name != "README.md" or README_FINDINGS not in text:
        return text
    section = text[text.index(README_FINDINGS):]
    end = section.find("\n## ", len(README_FINDINGS))
    return section if end < 0 else section[:end]


def _run_record(out: Path) -> dict:
    """``out/run.json``, the main job's record of the run ({} for a folder without one)."""
    run = out / "run.json"
    return json.loads(run.read_text()) if run.is_file() else {}


def is_quick(out: Path) -> bool:
    """Whether ``out`` holds a ``--quick`` run (``run.json``, written by the main job)."""
    return bool(_run_record(out).get("quick"))


def _stage_of(file: str) -> str:
    return file.split("/")[0]


def _verdicts(sources: list[dict]) -> dict[str, str]:
    """The verdicts among a block's recorded numbers and words: ``{"file:key/path": text}``."""
    return {f"{src['file']}:{'/'.join(map(str, src['path']))}": src["text"] for src in sources
            if _is_verdict(src["path"])}


def _is_verdict(path) -> bool:
    """Whether a recorded key path holds a verdict: in a ``verdicts`` list only the entry's ``verdict`` word (its
    evidence and p are numbers that may move), elsewhere any key named as one (:data:`VERDICT_KEYS`)."""
    keys = [str(k) for k in path]
    if "verdicts" in keys:
        return keys[-1] == "verdict"
    return any(k in VERDICT_KEYS or "verdict" in k for k in keys)


def _moved(old: str, new: str) -> list[tuple[str, str]]:
    """The numbers that differ between two texts that read the same with every number masked, in order."""
    return [(a, b) for a, b in zip(NUMBER.findall(old), NUMBER.findall(new), strict=True) if a != b]


def _change(a: str, b: str) -> str:
    """``"1,192 → 1,240 (+4.0%)"``: one moved number, with its relative change where both are numbers."""
    try:
        x, y = (float(t.replace(",", "").replace("−", "-")) for t in (a, b))
    except ValueError:
        return f"{a} → {b}"
    return f"{a} → {b}" + (f" ({(y - x) / abs(x):+.1%})" if x else "")


def _compare_elsewhere(name: str, old: str, new: str, before: dict | None, after: dict) -> tuple[str | None, str]:
    """A block that differs from a run made in another numerical environment: ``(problem, note)``. The problem
    (a verdict changed: its wording, or a recorded verdict) is None when only numbers moved; the note says which
    numbers moved and by how much."""
    if before is not None:
        changed = [f"{k}: {before[k]} → {after.get(k)}" for k in before if before[k] != after.get(k)]
        if changed:
            return f"block {name}: a verdict changed: {'; '.join(changed)}", ""
    if NUMBER.sub("#", old) != NUMBER.sub("#", new):
        line = next((f"'{a.strip()[:160]}' → '{b.strip()[:160]}'" for a, b in
                     zip(old.splitlines(), new.splitlines(), strict=False) if NUMBER.sub("#", a) != NUMBER.sub("#", b)),
                    "its lines differ")
        return f"block {name}: a verdict changed (the wording differs, not only numbers): {line}", ""
    moved = _moved(old, new)
    total = len(NUMBER.findall(old))
    shown = ", ".join(_change(a, b) for a, b in moved[:MOVED_SHOWN])
    more = f" and {len(moved) - MOVED_SHOWN} more" if len(moved) > MOVED_SHOWN else ""
    return None, (f"{name}: {len(moved)} of {total} numbers moved ({shown}{more}); "
                  f"{'no verdict changed' if before is not None else 'no wording changed (verdicts not recorded)'}")


def check_docs(out: Path, root: Path = ROOT, *, write: bool = False, notes: list | None = None) -> list[str]:
    """Problems in the documentation against the run in ``out`` (rewrites the blocks and figures when ``write``).

    A block whose experiment the run did not include (the report tier has no extended study) is not
    checked; its name goes to ``notes``. When the docs were generated in another numerical environment
    (``docs/generated_from.json``), the blocks of the report tier (which agree to the digit across CPUs,
    docs/reproducibility.md) are still compared exactly; the others may move: their moved numbers go to
    ``notes``, and only a changed verdict is a problem.
    """
    from experiments.report_docs import BLOCKS
    from experiments.reproduce import REPORT_TIER

    out, quick = Path(out), is_quick(out)
    notes = [] if notes is None else notes
    record = _run_record(out)
    stages = REPORT_TIER if record.get("tier") == "report" else None
    provenance = _provenance(root)
    elsewhere = not write and not quick and _elsewhere(provenance.get("environment"), record.get("environment"))
    allowed = _configured_values(out)
    problems, skipped, verdicts = [], [], {}
    for path in doc_files(root):
        if not path.is_file():
            continue
        where = str(path.relative_to(root))
        text = path.read_text()
        new_text, seen = text, set()
        for m in BLOCK.finditer(text):
            name = m.group(2)
            if name in seen:
                problems.append(f"{where}: block {name} appears twice")
            seen.add(name)
            if name not in BLOCKS:
                problems.append(f"{where}: unknown generated block {name}")
                continue
            page = Page(out, stages=stages)
            try:
                BLOCKS[name](page)
            except NotInRun:
                skipped.append(name)
                continue
            except (FileNotFoundError, KeyError, IndexError, TypeError, ValueError) as err:  # ValueError: schemas.load
                problems.append(f"{where}: block {name} cannot be generated from {out}: {err!r}")
                continue
            body = "\n".join(page.lines).rstrip() + "\n"
            problems += _check_sources(out, body, page.sources, f"{where} [{name}]")
            verdicts[name] = _verdicts(page.sources)
            if quick:
                continue
            if write:
                new_text = new_text.replace(m.group(0), m.group(1) + body + m.group(4))
            elif body != m.group(3):
                exact = all(_stage_of(src["file"]) in (*REPORT_TIER, "run.json", "reference.json")
                            for src in page.sources)
                if not elsewhere or exact:
                    problems.append(f"{where}: block {name} {DIFFERS} {out} "
                                    f"(python -m experiments.check_report {out} --write-docs rewrites it)")
                    continue
                problem, note = _compare_elsewhere(name, m.group(3), body, provenance.get("verdicts", {}).get(name),
                                                   verdicts[name])
                if problem:
                    problems.append(f"{where}: {problem}")
                else:
                    notes.append(f"{where}: {note}")
        if write and new_text != text:
            from rnnjax.io import atomic_write_text

            atomic_write_text(path, new_text)
        prose = CODE.sub("", RECORD.sub("", BLOCK.sub("", _checked_part(path, text))))
        for number in DECIMAL.findall(prose):
            if number not in PROSE_CONSTANTS and round(float(number), 10) not in allowed:
                problems.append(f"{where}: {number} outside a generated block is neither a setting nor a quote: "
                                "measured numbers belong in a generated block")
        for m in INTEGER.finditer(prose):
            number = int(m.group(0).replace(",", ""))
            if (number <= 12 or 1900 <= number <= 2099 or number in PROSE_INTEGERS or float(number) in allowed
                    or LABEL.search(prose[max(0, m.start() - 12):m.start()])):
                continue
            problems.append(f"{where}: {m.group(0)} outside a generated block is neither a setting nor a quote: "
                            "measured numbers belong in a generated block")
    figures = _check_figures(out, root, stages, write=write and not quick, compare=not quick, elsewhere=elsewhere,
                             notes=notes, problems=problems)
    if skipped:
        notes.append(f"not checked, as this run has no extended study (`reproduce --all` runs them): "
                     f"{len(skipped)} block{'s' if len(skipped) != 1 else ''} ({', '.join(skipped)})")
    if write and not quick:
        from rnnjax.io import write_json

        write_json(root / PROVENANCE, {"environment": record.get("environment"), "verdicts": verdicts,
                                       "figures": figures})
    return problems


def _check_figures(out: Path, root: Path, stages, *, write: bool, compare: bool, elsewhere: bool, notes: list,
                   problems: list) -> dict:
    """Every image the docs show (:data:`FIGURES`) is a file the run makes and, unless ``compare`` is False (a
    quick run), the run's own file byte for byte; ``write`` copies them. Returns ``{docs path: the run's file}``."""
    import hashlib

    done = {}
    for shown in sorted(shown_images(root)):
        made = FIGURES.get(shown)
        if made is None:
            problems.append(f"{shown} is shown by the docs but made by no run: add it to check_report.FIGURES")
            continue
        if stages is not None and _stage_of(made) not in stages:
            continue  # the report tier does not make it
        source, target = out / made, root / shown
        if not source.is_file():
            problems.append(f"{shown}: the run's {made} is missing")
            continue
        data = source.read_bytes()
        done[shown] = made
        if write:
            from rnnjax.io import atomic_write_bytes

            atomic_write_bytes(target, data)
        elif not compare:
            continue
        elif not target.is_file():
            problems.append(f"{shown} is missing (python -m experiments.check_report {out} --write-docs copies it)")
        elif hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(data).digest():
            if elsewhere:
                notes.append(f"{shown}: differs from this run's {made} (drawn from the numbers that moved)")
            else:
                problems.append(f"{shown} is not this run's {made}: the figure {DIFFERS} {out} "
                                f"(python -m experiments.check_report {out} --write-docs copies it)")
    return done


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def shown_images(root: Path = ROOT) -> set[str]:
    """Every image README.md and docs/*.md show, as a path from the repository root."""
    found = set()
    for path in doc_files(root):
        if path.is_file():
            for link in IMAGE.findall(path.read_text()):
                found.add(str((path.parent / link).resolve().relative_to(root.resolve())))
    return found


def _provenance(root: Path) -> dict:
    path = root / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else {}


def _elsewhere(docs: dict | None, run: dict | None) -> bool:
    """Whether the docs and the run record different numerical environments (False when either is unknown)."""
    from rnnjax.devices import same_numerics

    return docs is not None and run is not None and not same_numerics(docs, run)


def _describe(env: dict) -> str:
    features = "/".join(f for f in env.get("cpu_features", []) if f.startswith("avx")) or "no AVX"
    return f"{env.get('cpu_model')} ({features}), jax {env.get('jax')}, XLA_FLAGS '{env.get('xla_flags')}'"


def environment_note(out: Path, root: Path = ROOT) -> str | None:
    """Why the docs' blocks may differ from ``out`` without anything being wrong: the docs were generated
    in another numerical environment (:func:`rnnjax.devices.environment`). None when they agree."""
    docs = _provenance(root).get("environment")
    run = _run_record(out).get("environment")  # None for a run that predates the record
    if docs is not None and run is not None and not _elsewhere(docs, run):
        return None
    where = (f"the docs were generated on {_describe(docs)}, this run ran on {_describe(run)}"
             if docs and run else "the docs or this run do not record where they ran")
    return (f"{where}: float32 training rounds its last bits differently on other CPUs and versions, and the "
            "long, chaotic runs (remedies, flossing, the gated variants) amplify them, so their blocks may differ; "
            "the report's own experiments agreed to the digit across the two CPUs measured (docs/reproducibility.md)")


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser("check_report", __doc__)
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs"),
                        help="the folder the main job wrote (default: runs/)")
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the docs' generated blocks from OUT (a full run only)")
    parser.add_argument("--no-docs", action="store_true", help="check the page only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = args.out
    if not out.is_dir():
        raise _cli.UsageError(f"{out} is not a folder; give the folder `python -m experiments.reproduce` wrote")
    for name in ("report.md", "report_sources.json"):
        if not (out / name).is_file():
            raise _cli.UsageError(f"{out / name} is missing; build the page with `python -m experiments.reproduce "
                                  f"--out {out}` (or `python -m experiments.report {out}`)")
    if args.write_docs and is_quick(out):
        raise _cli.UsageError(f"{out} holds a --quick run; the docs are written from a full run only")
    if args.write_docs and _run_record(out).get("tier") == "report":
        raise _cli.UsageError(f"{out} holds the report tier only; the docs are written from a full "
                              "`python -m experiments.reproduce --all` run")
    notes: list[str] = []
    with _cli.user_errors():
        problems = check(out)
        if not args.no_docs:
            problems += check_docs(out, write=args.write_docs, notes=notes)
    for problem in problems:
        print(f"check_report: {problem}")
    env_note = environment_note(out) if any(DIFFERS in p for p in problems) or any("moved" in n for n in notes) \
        else None
    if env_note or notes:
        print("check_report: note:" + (f" {env_note}" if env_note else ""))
        for note in notes:
            print(f"  - {note}")
    docs = " and the docs" + (" (quick run: blocks generated, not compared)" if is_quick(out) else "")
    what = f"{out / 'report.md'}" + ("" if args.no_docs else docs)
    print(f"check_report: {what}: " + ("OK" if not problems else
                                       f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"))
    return 1 if problems else 0


if __name__ == "__main__":
    _cli.run_as_command(main, "check_report")
