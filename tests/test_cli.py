"""Every command line against bad input, as an adversarial user would type it: exit status 2, one or two
lines that name the file, flag or row, no traceback, and nothing written or changed.

The cases run in real interpreters (``tests/cli_driver.py``, each module's ``__main__`` block through
``runpy``), one interpreter per module so the cases share its imports; every case is refused before
any JAX work starts, so the whole table costs a few interpreter start-ups. The Stooq cases talk to a
scripted server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from experiments import _cli
from experiments._cli import MARKER

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "cli_driver.py"
GOOD_ROWS = "".join(f"2000-01-{d:02d},{10 + d}.5\n" for d in range(1, 29))
CSV = "Date,Close\n" + GOOD_ROWS + "".join(f"2000-02-{d:02d},{40 + d}.25\n" for d in range(1, 29))


def env() -> dict:
    e = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e.pop("STOOQ_APIKEY", None)
    return e


class _Stooq(BaseHTTPRequestHandler):
    """``s=limit.us``: 429 with Retry-After; ``s=slow.us``: headers, then a byte every 0.2 s; ``s=busy.us``: 503;
    ``s=late.us``: 503 after 1 s; else a CSV. ``hits`` records (ticker, monotonic time) of every request."""

    hits: list = []

    def do_GET(self):  # noqa: N802
        ticker = parse_qs(urlsplit(self.path).query).get("s", [""])[0]
        self.hits.append((ticker, time.monotonic()))
        if ticker in ("busy.us", "late.us"):
            time.sleep(1.0 if ticker == "late.us" else 0)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if ticker == "limit.us":
            self.send_response(429)
            self.send_header("Retry-After", "120")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("Date,Open,High,Low,Close,Volume\n" + "2024-01-02,1,1,1,1,1\n" * 50).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if ticker != "slow.us":
            self.wfile.write(body)
            return
        for byte in body[:40]:  # far slower than any --timeout below, one byte at a time
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stooq_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stooq)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _files(root: Path) -> None:
    """The inputs every case may point at (written once; the cases must leave them byte-identical)."""
    w = lambda name, text: (root / name).write_text(text)
    w("good.csv", CSV)
    w("ambiguous.csv", "Date,Close\n" + "".join(f"{m:02d}/{d:02d}/2000,{d}.5\n" for m in (1, 2) for d in range(1, 13)))
    w("both_orders.csv", "Date,Close\n01/02/2000,1\n13/02/2000,2\n02/14/2000,3\n" + "03/03/2000,4\n" * 3)
    w("inf.csv", "Date,Close\n" + GOOD_ROWS.replace("2000-01-04,14.5", "2000-01-04,inf"))
    w("infinity.csv", "Date,Close\n" + GOOD_ROWS.replace("2000-01-09,19.5", "2000-01-09,-Infinity"))
    w("two_close.csv", "Date,close,Close\n" + "".join(f"2000-01-{d:02d},{d},{d}\n" for d in range(1, 29)))
    w("no_close.csv", "Date,Open\n2000-01-03,1\n")
    w("empty.csv", "")
    (root / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 20)
    w("few_rows.csv", "Date,Close\n" + GOOD_ROWS[: GOOD_ROWS.index("2000-01-11")])
    w("bad_date.csv", "Date,Close\n" + GOOD_ROWS.replace("2000-01-06", "2000-13-45"))
    (root / "d").mkdir()
    w("d/history.csv", CSV)
    w("a_file", "not a folder\n")
    (root / "cache" / "stooq").mkdir(parents=True)
    w("cache/stooq/aapl.us.csv", "<html>half a page, not a CSV")  # fresh: used without a request
    (root / "foreign" / "stock_forecast").mkdir(parents=True)
    w("foreign/stock_forecast/mine.txt", "a standalone run's results\n")
    (root / "no_page").mkdir()
    (root / "bad_page").mkdir()
    w("bad_page/report.md", "# page\n")
    w("bad_page/report_sources.json", "{not json")
    (root / "bad_json" / "stock_forecast").mkdir(parents=True)
    w("bad_json/stock_forecast/metrics.json", '{"rmse": 1.0,')
    # issue 20: folders a run must not replace, data it could not finish with
    def finished(name, experiment, files):  # a finished run's folder, as _cli.atomic_folder leaves it
        (root / name).mkdir()
        for f in files:
            w(f"{name}/{f}", "{}")
        w(f"{name}/{MARKER}", json.dumps({"experiment": experiment, "files": files}))

    finished("fin_user", "stock_forecast", ["metrics.json", "history.csv"])
    w("fin_user/my_notes.txt", "notes\n")
    finished("fin_dir", "stock_forecast", ["metrics.json"])
    (root / "fin_dir" / "mine").mkdir()
    w("fin_dir/mine/draft.md", "a user's folder\n")
    finished("gs_run", "gradient_stability", ["metrics.json", "fig3_grad_norm.png"])
    (root / "runs" / "stock_forecast").mkdir(parents=True)
    w("runs/stock_forecast/.made-by-reproduce", "")
    w("runs/stock_forecast/metrics.json", "{}")
    (root / "page_user").mkdir()
    w("page_user/report.md", "# my own report\n")
    (root / "page_stray").mkdir()
    w("page_stray/notes.txt", "mine\n")
    (root / "half_report" / "stock_forecast").mkdir(parents=True)
    w("half_report/stock_forecast/metrics.json", '{"rmse": 1.0}')
    w("year1.csv", "Date,Close\n" + GOOD_ROWS.replace("2000-", "0001-"))
    w("huge.csv", "Date,Close\n" + "".join(f"2000-01-{d:02d},{d}e300\n" for d in range(1, 29)))
    w("tiny.csv", "Date,Close\n" + "".join(f"2000-01-{d:02d},{d}e-300\n" for d in range(1, 29)))


def _cases(root: Path, url: str) -> dict[str, list[tuple]]:
    """module -> [(argv, substrings the error must contain[, environment])]: every class of bad input of issues 11
    and 20. ``root/locked`` is held by this process (:func:`results`) while the cases run."""
    r = lambda name: str(root / name)
    out = ["--out", r("out")]
    closed = f"http://127.0.0.1:{_closed_port()}"
    sf = [
        # numeric flags: finite, in range, representable in float32, seeds in the PRNG's range
        (["--lr", "inf"], ["--lr", "finite"]),
        (["--lr", "nan"], ["--lr"]),
        (["--lr", "1e-50"], ["--lr", "rounds to 0 in float32"]),
        (["--lr", "1e39"], ["--lr", "rounds to inf"]),
        (["--lr", "-0.1"], ["--lr", "> 0"]),
        (["--clip", "-1"], ["--clip", ">= 0"]),
        (["--clip", "inf"], ["--clip", "finite"]),
        (["--seeds", "0"], ["--seeds", ">= 1"]),
        (["--seed", "-3"], ["--seed", ">= 0"]),
        (["--seed", "2147483647", "--seeds", "2"], ["--seed", "2147483648", "largest seed"]),
        (["--lookback", "0"], ["--lookback"]),
        (["--epochs", "1.5"], ["--epochs", "integer"]),
        (["--train-fraction", "1"], ["--train-fraction", "< 1"]),
        (["--hidden", "2000000", *out], ["--hidden 2000000", "GiB", "available"]),
        (["--cell", "gru", "--method", "bptt"], ["--method bptt", "--cell gru"]),
        (["--cell", "transformer"], ["--cell", "invalid choice"]),
        # the output folder: writable, a folder, not holding the inputs
        (["--csv", r("d/history.csv"), "--out", r("d")], ["holds the input", "history.csv"]),
        (["--out", r("a_file")], ["--out", "a_file", "is a file"]),
        (["--out", r("a_file/sub")], ["a_file", "is a file"]),
        (["--out", r("cache")], ["--out", "stooq", "no stock_forecast run wrote", "--force"]),
        (["--out", "."], ["--out .", "holds the current folder"]),
        (["--out", "/sys/rnnjax-out"], ["--out /sys/rnnjax-out", "cannot create folders"]),
        # files, columns, rows
        (["--csv", r("missing.csv"), *out], ["missing.csv", "does not exist"]),
        (["--csv", r("empty.csv"), *out], ["empty.csv", "empty"]),
        (["--csv", r("binary.csv"), *out], ["binary.csv"]),
        (["--csv", r("no_close.csv"), *out], ["no_close.csv", "no close column"]),
        (["--csv", r("two_close.csv"), *out], ["two_close.csv", "'close', 'Close'"]),
        (["--csv", r("few_rows.csv"), *out], ["few_rows.csv", "too few rows"]),
        (["--csv", r("bad_date.csv"), *out], ["bad_date.csv", "unparseable date", "(line 7)"]),
        (["--csv", r("ambiguous.csv"), *out], ["ambiguous.csv", "line 3", "--date-format"]),
        (["--csv", r("both_orders.csv"), *out], ["both_orders.csv", "line 3", "line 4", "day-first"]),
        (["--csv", r("ambiguous.csv"), "--date-format", "%Y-%m-%d", *out], ["ambiguous.csv", "24 unparseable dates"]),
        (["--csv", r("inf.csv"), *out], ["inf.csv", "1 infinite close in column 'Close' (line 5)", "--drop-invalid"]),
        (["--csv", r("infinity.csv"), *out], ["infinity.csv", "infinite close", "(line 10)"]),
        # --ticker-only flags refused without --ticker
        (["--csv", r("good.csv"), "--cache-dir", r("cache"), *out], ["--cache-dir only applies to --ticker"]),
        (["--csv", r("good.csv"), "--apikey", "k", "--refresh", *out], ["--apikey, --refresh", "--ticker"]),
        (["--timeout", "5", *out], ["--timeout", "embedded"]),
        (["--ticker", "aapl.us", "--retries", "99"], ["--retries", "<= 10"]),
        # Stooq: bad ticker, rate limit, a trickling server, no server, a corrupt cache
        (["--ticker", "a/../b", "--cache-dir", r("cache"), *out], ["invalid ticker", "a/../b"]),
        (["--ticker", "limit.us", "--stooq-url", url, "--cache-dir", r("cache"), *out],
         ["rate limit", "HTTP 429", "wait 120 s (Retry-After)"]),
        (["--ticker", "slow.us", "--stooq-url", url, "--cache-dir", r("cache"), "--timeout", "1", "--retries", "0",
          *out], ["slow.us", "not complete within 1 s", "--timeout"]),
        (["--ticker", "aapl.us", "--stooq-url", closed, "--cache-dir", r("cache"), "--retries", "0", "--refresh",
          *out], ["could not reach", "aapl.us"]),
        (["--ticker", "aapl.us", "--stooq-url", closed, "--cache-dir", r("cache"), *out],
         [str(root / "cache" / "stooq" / "aapl.us.csv"), "corrupt", "--refresh"]),
        # issue 20: nothing a user owns is replaced, one run per folder
        (["--out", r("fin_user")], ["--out", "fin_user", "my_notes.txt", "no stock_forecast run wrote", "--force"]),
        (["--out", r("fin_dir")], ["fin_dir holds mine,", "--force"]),
        (["--out", r("gs_run")], ["holds a finished gradient_stability run", "not even with --force"]),
        (["--out", r("gs_run"), "--force"], ["holds a finished gradient_stability run"]),
        (["--out", r("runs/stock_forecast")], ["main job's folder", ".made-by-reproduce"]),
        (["--ticker", "aapl.us", "--stooq-url", url, "--out", r("with_cache")],
         ["--out", "with_cache holds the input", str(root / "with_cache" / "c")], {"RNNJAX_CACHE": r("with_cache/c")}),
        (["--out", r("locked")], ["--out", "locked is in use by another run", f"(pid {os.getpid()})"]),
        # issue 20: flags never ignored; data the run could not finish with, refused before training
        (["--date-format", "%Y-%m-%d", *out], ["--date-format only applies to --csv", "embedded msft.us"]),
        (["--deadline", "5", *out], ["--deadline", "--ticker"]),
        (["--csv", r("year1.csv"), *out], ["year1.csv", "0001-01-01", "years 1000-9000"]),
        (["--csv", r("huge.csv"), *out], ["huge.csv", "1e+300", "rescale"]),
        (["--csv", r("tiny.csv"), *out], ["tiny.csv", "1e-300", "rescale"]),
        (["--train-fraction", "0.9999", *out], ["--train-fraction 0.9999", "1 test window", "at least 3"]),
        (["--ticker", "busy.us", "--stooq-url", url, "--cache-dir", r("cache"), "--retries", "10", "--deadline",
          "0.5", *out], ["HTTP 503", "busy.us"]),
    ]
    gs = [
        (["--rhos", "0.9", "-1", *out], ["--rhos", "> 0"]),
        (["--rhos", "inf", *out], ["--rhos", "finite"]),
        (["--rhos", "nan", *out], ["--rhos", "finite"]),
        (["--norm", "nuclear", *out], ["--norm", "invalid choice"]),
        (["--lr", "1e39", *out], ["--lr", "rounds to inf in float32"]),
        (["--segment-length", "1", *out], ["--segment-length", ">= 2"]),
        (["--repeats", "1", "--segment-length", "100", *out], ["--repeats 1", "--segment-length 100"]),
        (["--hidden", "300000", *out], ["--hidden 300000", "GiB"]),
        (["--devices", "0", *out], ["--devices"]),
        (["--out", r("a_file")], ["a_file", "is a file"]),
        (["--rhos", "0.9", "0.9", *out], ["--rhos", "distinct", "0.9 given twice"]),
        (["--rhos", "1e-30", "--out", r("fin_user")], ["fin_user", "holds a finished stock_forecast run"]),
    ]
    sp = [
        (["--rho-min", "2", "--rho-max", "1", *out], ["--rho-min 2", "--rho-max 1"]),
        (["--lengths", "20", "1", *out], ["--lengths", ">= 2"]),
        (["--lyap-length", "100000", *out], ["--lyap-length 100000", "longer than the text"]),
        (["--segments", "10000", *out], ["--segments 10000", "at most"]),
        (["--grid", "1", *out], ["--grid", ">= 2"]),
        (["--seed", "2147483647", *out], ["--seed", "largest seed"]),
        (["--segment-length", "100000", *out], ["--segment-length 100000", "longer than the text"]),
        (["--lengths", "20", "50", "20", *out], ["--lengths", "distinct"]),
    ]
    rm = [
        (["--clip-lrs", "0.01", "-1", *out], ["--clip-lrs", "> 0"]),
        (["--clip-tau", "0", *out], ["--clip-tau", "> 0"]),
        (["--adding-T", "1", *out], ["--adding-T", ">= 2"]),
        (["--models", "transformer", *out], ["--models", "invalid choice"]),
        (["--lr", "1e-60", *out], ["--lr", "rounds to 0"]),
        (["--adding-steps", "1000000", "--batch", "100000", *out], ["--adding-steps", "GiB"]),
        (["--out", r("d/history.csv")], ["history.csv", "is a file"]),
        (["--clip-lrs", "0.01", "0.01", *out], ["--clip-lrs", "distinct"]),
        (out, ["RNNJAX_PROGRESS_EVERY='1e-9'", "finite number >= 0.1", "unset: 10"],
         {"RNNJAX_PROGRESS_EVERY": "1e-9"}),
        (["--models", "lstm", "gru", "lstm", *out], ["--models", "distinct", "lstm given twice"]),
    ]
    fl = [
        (["--delays", "5", "90", *out], ["--delays", "1..length-2 = 78"]),
        (["--num", "40", *out], ["--num (40)", "--hidden (32)"]),
        (["--seeds", "0", *out], ["--seeds", ">= 1"]),
        (["--threshold", "1.5", *out], ["--threshold", "<= 1"]),
        (["--noise", "nan", *out], ["--noise", "finite"]),
        (["--floss-lr", "1e-60", *out], ["--floss-lr", "rounds to 0"]),
        (["--delays", "5", "5", *out], ["--delays", "distinct"]),
        (["--steps", "1000000", "--batch", "100000", *out], ["delayed recall", "GiB"]),
        (["--out", r("d/history.csv")], ["history.csv", "is a file"]),
    ]
    rp = [
        (["--only", "nothing"], ["--only", "invalid choice"]),
        (["--out", r("a_file")], ["a_file", "is a file"]),
        (["--out", r("foreign"), "--only", "stock_forecast"],
         [str(root / "foreign" / "stock_forecast"), "not written by the main job"]),
        (["--out", r("page_user"), "--only", "stock_forecast"], [str(root / "page_user" / "report.md"),
                                                                 "did not write", "not even --force"]),
        (["--out", r("page_user"), "--only", "stock_forecast", "--force"], ["report.md", "not even --force"]),
        (["--out", r("page_stray"), "--only", "stock_forecast"], ["notes.txt", "did not write", "--force"]),
        (["--out", r("locked")], ["--out", "locked is in use by another run", f"(pid {os.getpid()})"]),
        (["--out", r("fresh"), "--quick"], ["RNNJAX_PROGRESS_EVERY='soon'", "finite number >= 0.1"],
         {"RNNJAX_PROGRESS_EVERY": "soon"}),
    ]
    cr = [
        ([r("nowhere")], ["nowhere", "is not a folder"]),
        ([r("no_page")], [str(root / "no_page" / "report.md"), "missing", "experiments.reproduce"]),
        ([r("bad_page")], [str(root / "bad_page" / "report_sources.json"), "not valid JSON"]),
    ]
    re_ = [
        ([r("nowhere")], ["nowhere", "is not a folder"]),
        ([r("bad_json")], [str(root / "bad_json" / "stock_forecast" / "metrics.json"), "not valid JSON"]),
        ([r("half_report")], ["half_report", "metrics.json: missing '", "rerun"]),
    ]
    return {"experiments.stock_forecast": sf, "experiments.gradient_stability": gs,
            "experiments.gradient_spectra": sp, "experiments.remedies": rm, "experiments.flossing": fl,
            "experiments.reproduce": rp,
            "experiments.check_report": cr, "experiments.report": re_}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: connections are refused


def _drive(module: str, cases: list[dict], cwd: Path) -> list[dict]:
    run = subprocess.run([sys.executable, str(DRIVER)], input=json.dumps(cases), capture_output=True, text=True,
                         cwd=cwd, env=env(), timeout=300)
    assert run.returncode == 0, f"{module}: the driver failed:\n{run.stderr[-3000:]}"
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def results(tmp_path_factory, stooq_url):
    """Every case of :func:`_cases`, plus ``--help`` of every module, run by two driver processes (each pays the
    imports once), grouped by module. Each driver has its own folder of inputs to watch: a case that makes a
    transient file (a write probe) in one must not show up as a change in the other's case."""
    roots = [tmp_path_factory.mktemp("cli") for _ in range(2)]
    tables = []
    for root in roots:
        _files(root)
        tables.append(_cases(root, stooq_url))
    modules = [*tables[0], "experiments.report_sections"]
    half = {m: i % 2 for i, m in enumerate(modules)}  # which driver, and so which folder, runs module m
    table = {m: tables[half[m]][m] for m in tables[0]}
    batches = {m: [{"module": m, "argv": c[0], "watch": str(roots[half[m]]), "env": c[2] if len(c) > 2 else {}}
                   for c in table.get(m, [])]
               + [{"module": m, "argv": ["--help"], "watch": str(roots[half[m]])}] for m in modules}
    halves = [[c for m in modules if half[m] == i for c in batches[m]] for i in (0, 1)]
    done = {m: [] for m in modules}
    with ThreadPoolExecutor(max_workers=2) as pool, _cli.out_lock(roots[0] / "locked"), \
            _cli.out_lock(roots[1] / "locked"):  # another run's, to the cases
        runs = list(pool.map(lambda i: _drive(f"driver {i} of 2", halves[i], roots[i]), (0, 1)))
        for cases, res in zip(halves, runs, strict=True):
            for case, r in zip(cases, res, strict=True):
                done[case["module"]].append(r)
    return table, done


def test_the_table_covers_at_least_40_bad_inputs(results):
    table, _ = results
    assert sum(len(v) for v in table.values()) >= 40


@pytest.mark.parametrize("module", ["experiments.stock_forecast", "experiments.gradient_stability",
                                    "experiments.gradient_spectra", "experiments.remedies", "experiments.flossing",
                                    "experiments.reproduce",
                                    "experiments.check_report", "experiments.report"])
def test_bad_inputs_exit_2_with_one_clear_line_and_change_nothing(results, module):
    table, done = results
    problems = []
    for (argv, expected, *_), res in zip(table[module], done[module], strict=False):
        what = f"{module} {' '.join(argv)}"
        err = res["err"]
        if res["code"] != 2:
            problems.append(f"{what}: exit {res['code']}, stderr {err[-800:]!r}")
        if "Traceback" in err:
            problems.append(f"{what}: a traceback:\n{err[-1500:]}")
        missing = [s for s in expected if s not in err]
        if missing:
            problems.append(f"{what}: message {err!r} lacks {missing}")
        if len(err.strip().splitlines()) != 1:
            problems.append(f"{what}: {len(err.strip().splitlines())} lines on stderr: {err!r}")
        if res["before"] != res["after"]:
            changed = sorted(set(res["before"].items()) ^ set(res["after"].items()))
            problems.append(f"{what}: files changed: {changed[:4]}")
    assert not problems, "\n".join(problems)


def test_help_works_on_every_module(results):
    _, done = results
    for module, res in done.items():
        assert res[-1]["code"] == 0 and "usage: python -m " + module in res[-1]["out"], (module, res[-1]["err"])
        assert "--debug" in res[-1]["out"]


def test_debug_shows_the_traceback(tmp_path, results):
    run = subprocess.run([sys.executable, "-m", "experiments.check_report", str(tmp_path), "--debug"],
                         capture_output=True, text=True, cwd=tmp_path, env=env(), timeout=120)
    assert run.returncode != 0 and "Traceback (most recent call last)" in run.stderr
    assert "UsageError" in run.stderr and "report.md is missing" in run.stderr
    # the same error without --debug (the table's run of it, in its own interpreter): one line, exit 2
    table, done = results
    (plain,) = [res for (argv, *_), res in zip(table["experiments.check_report"], done["experiments.check_report"],
                                               strict=False) if argv[0].endswith("no_page")]
    assert plain["code"] == 2 and "Traceback" not in plain["err"] and "report.md is missing" in plain["err"]
    assert plain["err"].startswith("check_report: error: ") and len(plain["err"].splitlines()) == 1
