"""The Stooq client against a real HTTP server on 127.0.0.1, scripted per test (no network)."""

from __future__ import annotations

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest

from rnnjax.data import stooq
from rnnjax.data.prices import load_price_data, load_prices

KEY = "s3cr3t-KEY-42"
CSV = ("Date,Open,High,Low,Close,Volume\n"
       "2024-01-02,10,11,9,10.5,100\n"
       "2024-01-03,10.5,12,10,11.5,120\n"
       "2024-01-04,11.5,12,11,11.0,90\n")
CHALLENGE = ("<!DOCTYPE html><html><head><title>stooq</title></head><body>Please enable JavaScript "
             "and provide your apikey to continue</body></html>")


class Reply(NamedTuple):
    status: int = 200
    body: str = CSV
    content_type: str = "text/csv"
    delay: float = 0.0


class Scripted(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):  # a client that timed out closed the socket: fine
        pass


@pytest.fixture
def server():
    """A local server answering the scripted replies in order (the last one repeats); records each query."""
    state = {"replies": [Reply()], "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state["seen"].append(self.path)
            i = min(len(state["seen"]), len(state["replies"])) - 1
            reply = state["replies"][i]
            if reply.delay:
                time.sleep(reply.delay)
            data = reply.body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = Scripted(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    class Srv:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        seen = state["seen"]

        @staticmethod
        def script(*replies):
            state["replies"] = list(replies)

    yield Srv
    httpd.shutdown()
    httpd.server_close()


def fetch(server, tmp_path, **kw):
    opts = dict(apikey=KEY, cache_dir=tmp_path, base_url=server.url, timeout=2.0, retries=2, backoff=0.0,
                max_age=0)
    return stooq.fetch_csv("aapl.us", **(opts | kw))


def test_csv_success_cached_atomically_without_the_key(server, tmp_path):
    result = fetch(server, tmp_path)
    assert not result.from_cache and result.ticker == "aapl.us"
    assert result.path == tmp_path / "stooq" / "aapl.us.csv"
    assert result.path.read_text() == CSV
    query = parse_qs(urlsplit(server.seen[0]).query)
    assert urlsplit(server.seen[0]).path == "/q/d/l/"
    assert query == {"s": ["aapl.us"], "i": ["d"], "apikey": [KEY]}
    names = [p.name for p in tmp_path.rglob("*")]
    assert names == ["stooq", "aapl.us.csv"] or sorted(names) == ["aapl.us.csv", "stooq"]  # no temp files left
    assert all(KEY not in n for n in names)


def test_load_prices_from_ticker(server, tmp_path):
    data = load_price_data(ticker="AAPL.US", apikey=KEY, cache_dir=tmp_path, base_url=server.url, max_age=0)
    assert data.source == "stooq:aapl.us"
    assert list(data.closes) == [10.5, 11.5, 11.0]
    assert str(data.closes.index[-1].date()) == "2024-01-04"


def test_apikey_from_environment_and_fresh_cache_skips_the_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("STOOQ_APIKEY", KEY)
    stooq.fetch_csv("aapl.us", cache_dir=tmp_path, base_url=server.url, max_age=0)
    assert parse_qs(urlsplit(server.seen[0]).query)["apikey"] == [KEY]
    again = stooq.fetch_csv("aapl.us", cache_dir=tmp_path, base_url=server.url, max_age=3600)
    assert again.from_cache and len(server.seen) == 1  # no second request


@pytest.mark.parametrize("reply", [Reply(200, CHALLENGE, "text/html"), Reply(200, CHALLENGE, "text/plain"),
                                   Reply(403, CHALLENGE, "text/html")])
def test_challenge_or_apikey_page_is_an_auth_error(server, tmp_path, reply):
    server.script(reply)
    with pytest.raises(stooq.StooqAuthError, match="API-key request.*API key") as err:
        fetch(server, tmp_path)
    assert KEY not in str(err.value)
    assert not (tmp_path / "stooq" / "aapl.us.csv").exists()


def test_auth_advice_without_key(server, tmp_path, monkeypatch):
    monkeypatch.delenv("STOOQ_APIKEY", raising=False)
    server.script(Reply(200, CHALLENGE, "text/html"))
    with pytest.raises(stooq.StooqAuthError, match="STOOQ_APIKEY"):
        fetch(server, tmp_path, apikey=None)
    assert "apikey" not in parse_qs(urlsplit(server.seen[0]).query)


def test_no_data(server, tmp_path):
    server.script(Reply(200, "No data", "text/plain"))
    with pytest.raises(stooq.StooqNoDataError, match="no data for ticker 'aapl.us'"):
        fetch(server, tmp_path)


@pytest.mark.parametrize("reply", [Reply(429, "Too Many Requests", "text/plain"),
                                   Reply(200, "Exceeded the daily hits limit", "text/plain")])
def test_rate_limit_is_not_retried(server, tmp_path, reply):
    server.script(reply)
    with pytest.raises(stooq.StooqRateLimitError, match="rate limit"):
        fetch(server, tmp_path)
    assert len(server.seen) == 1


def test_server_error_retried_then_success(server, tmp_path):
    server.script(Reply(500, "oops"), Reply(503, "busy"), Reply())
    result = fetch(server, tmp_path, retries=2)
    assert result.path.read_text() == CSV
    assert len(server.seen) == 3


def test_server_error_retries_are_bounded(server, tmp_path):
    server.script(Reply(500, "oops"))
    with pytest.raises(stooq.StooqServerError, match="HTTP 500.*1 retries"):
        fetch(server, tmp_path, retries=1)
    assert len(server.seen) == 2


def test_timeout(server, tmp_path):
    server.script(Reply(delay=0.6))
    t0 = time.perf_counter()
    with pytest.raises(stooq.StooqTimeoutError, match="within 0.15 s") as err:
        fetch(server, tmp_path, timeout=0.15, retries=0)
    assert time.perf_counter() - t0 < 0.55
    assert KEY not in str(err.value)


def test_connection_refused_message_has_no_key(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(stooq.StooqConnectionError, match="could not reach") as err:
        stooq.fetch_csv("aapl.us", apikey=KEY, cache_dir=tmp_path, base_url=f"http://127.0.0.1:{port}",
                        retries=0, timeout=1.0, max_age=0)
    assert KEY not in str(err.value)


def test_other_status_is_not_mistaken_for_a_challenge(server, tmp_path):
    server.script(Reply(404, "<html>Not found</html>", "text/html"))
    with pytest.raises(stooq.StooqServerError, match="unexpected HTTP 404.*base URL"):
        fetch(server, tmp_path)


@pytest.mark.parametrize("body", ["hello,world\n1,2\n", "Date,Open\n2024-01-02,1\n", "Date,Close\n",
                                  CSV + "2024-01-05,11,12\n"])
def test_not_a_price_csv_is_a_format_error(server, tmp_path, body):
    server.script(Reply(200, body, "text/csv"))
    with pytest.raises(stooq.StooqFormatError, match="not a price CSV"):
        fetch(server, tmp_path)


def test_cache_kept_after_a_failed_fetch(server, tmp_path):
    good = fetch(server, tmp_path).path
    before = good.read_bytes()
    # a server error and a partial body: neither touches the cached file
    for reply in (Reply(500, "oops"), Reply(200, CSV + "2024-01-05,11,12\n")):
        server.script(reply)
        with pytest.raises(stooq.StooqError):
            fetch(server, tmp_path, retries=0, use_cache_on_error=False)
        assert good.read_bytes() == before
        with pytest.warns(stooq.StaleCacheWarning, match=r"using the cached file .*saved \d{4}-\d\d-\d\d .*"
                                                         r"last price date 2024-01-04"):
            result = fetch(server, tmp_path, retries=0)
        assert result.from_cache and result.path == good and good.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "stooq").iterdir()) == ["aapl.us.csv"]


@pytest.mark.parametrize("ticker", ["../etc/passwd", "a b", "aapl.us;rm", "", "x" * 41, "..", "a/b", "$$",
                                    "aapl.us&apikey=x", None])
def test_bad_tickers_refused_before_any_request(server, tmp_path, ticker):
    with pytest.raises(ValueError, match="invalid ticker"):
        stooq.fetch_csv(ticker, apikey=KEY, cache_dir=tmp_path, base_url=server.url, max_age=0)
    with pytest.raises(ValueError, match="invalid ticker" if ticker is not None else "need a ticker"):
        load_prices(ticker=ticker, apikey=KEY, cache_dir=tmp_path, base_url=server.url)
    assert server.seen == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ticker", ["aapl.us", "^spx", "BRK-B.US", "eurusd", "x_y"])
def test_good_tickers(ticker):
    assert stooq.validate_ticker(ticker) == ticker.lower()


def test_key_never_in_log_lines(server, tmp_path, caplog):
    server.script(Reply(500, "oops"), Reply())
    with caplog.at_level(logging.DEBUG):
        fetch(server, tmp_path, retries=1)
    assert "/q/d/l/" in caplog.text  # urllib3 logged the request URLs...
    assert "apikey=***" in caplog.text  # ...with the key redacted
    assert KEY not in caplog.text
    assert "urllib3" in {r.name.split(".")[0] for r in caplog.records}


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNJAX_CACHE", str(tmp_path / "c"))
    assert stooq.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RNNJAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert stooq.default_cache_dir() == tmp_path / "x" / "rnnjax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert stooq.default_cache_dir() == stooq.Path.home() / ".cache" / "rnnjax"


def test_redact():
    assert stooq.redact(f"GET /q/d/l/?s=a&apikey={KEY}&i=d failed ({KEY})", KEY) == \
        "GET /q/d/l/?s=a&apikey=***&i=d failed (***)"


def test_a_body_over_the_size_cap_is_refused(server, tmp_path):
    with pytest.raises(stooq.StooqFormatError, match=r"aapl.us is 121 bytes, over the 100 bytes limit"):
        stooq.download("aapl.us", apikey=KEY, base_url=server.url, retries=0, max_bytes=100)
    assert len(CSV) == 121


def test_a_trickling_server_meets_the_total_deadline(tmp_path):
    import socket

    with socket.socket() as srv:  # headers at once, then a byte every 0.3 s: each read is quick, the body never ends
        srv.bind(("127.0.0.1", 0))
        srv.listen()

        def trickle():
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 121\r\n\r\n")
                for byte in CSV.encode()[:20]:
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return
                    time.sleep(0.3)

        threading.Thread(target=trickle, daemon=True).start()
        t0 = time.monotonic()
        with pytest.raises(stooq.StooqTimeoutError, match=r"not complete within 1 s \(\d bytes so far\)"):
            stooq.download("aapl.us", apikey=KEY, base_url=f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=1.0,
                           retries=0)
        assert time.monotonic() - t0 < 3.0  # the per-read timeout alone would wait for all 121 bytes (36 s)


def test_retry_after_of_a_429_is_reported():
    with pytest.raises(stooq.StooqRateLimitError, match=r"wait 120 s \(Retry-After\)"):
        stooq.classify_response(429, "", ticker="x.us", has_key=True, retry_after="120")
    with pytest.raises(stooq.StooqRateLimitError, match=r"wait until Wed, 21 Oct 2026 07:28:00 GMT"):
        stooq.classify_response(429, "", ticker="x.us", has_key=True, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")


def test_a_corrupt_cache_is_named_with_the_refresh_remedy(server, tmp_path):
    path = tmp_path / "stooq" / "aapl.us.csv"
    path.parent.mkdir()
    path.write_text("<html>")  # a fresh cache file that is no CSV
    with pytest.raises(stooq.StooqFormatError, match=rf"the cached file {path} is corrupt .*--refresh"):
        fetch(server, tmp_path, max_age=3600)
    assert server.seen == []  # refused before any request
    assert fetch(server, tmp_path).path.read_text() == CSV  # --refresh (max_age=0) replaces it


def test_a_download_that_cannot_be_cached_is_still_used(server, tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    with pytest.warns(stooq.StaleCacheWarning, match=r"could not cache aapl.us .* used without caching"):
        result = fetch(server, blocked)
    assert result.path.read_text() == CSV and not result.from_cache
    assert blocked.read_text() == "a file where the cache folder should be"


def test_temp_files_of_a_killed_cache_write_are_removed(server, tmp_path):
    stale = tmp_path / "stooq" / ".aapl.us.csv.k1ll3d.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 1000)
    fresh = stale.with_name(".aapl.us.csv.wr1t1ng.tmp")  # another process writing right now: left alone
    fresh.write_bytes(b"y")
    old = time.time() - 2 * stooq.STALE_TEMP_S
    os.utime(stale, (old, old))
    fetch(server, tmp_path)
    assert not stale.exists() and fresh.exists()
