"""A small client for Stooq's daily-price CSV endpoint, with a cache and errors that say what to do.

``GET {base_url}/q/d/l/?s=TICKER&i=d&apikey=KEY`` answers a CSV
(``Date,Open,High,Low,Close,Volume``) -- or, since 2026, often something else. Every answer is
classified before a byte is cached (:func:`classify_response`):

==========================  ==========================================  =========================
answer                      meaning                                     exception
==========================  ==========================================  =========================
HTML with 200, or 401/403   API-key request or browser challenge        :class:`StooqAuthError`
"No data"                   unknown ticker / no history                 :class:`StooqNoDataError`
429 or "daily hits limit"   rate limit                                  :class:`StooqRateLimitError`
5xx                         server error, retried with backoff first    :class:`StooqServerError`
no answer in ``timeout``    timeout (also retried within ``deadline``)  :class:`StooqTimeoutError`
                            the whole body must arrive in ``timeout``
connection refused / DNS    no network                                  :class:`StooqConnectionError`
other HTTP status           e.g. 404: wrong base URL                    :class:`StooqServerError`
anything else               not a CSV with Date and Close columns       :class:`StooqFormatError`
a body over ``max_bytes``   (200 MB by default)                         :class:`StooqFormatError`
==========================  ==========================================  =========================

Retries are bounded (``retries``, exponential backoff); ``timeout`` bounds each attempt and ``deadline``
all attempts together.
Good answers are cached atomically as ``<cache_dir>/stooq/<ticker>.csv``; a failed or partial
fetch never touches the cache, and when a fetch fails a cached copy is used with a warning that
gives its date. A cached file that is not a price CSV is named with the remedy (``--refresh``);
temporary files left by a killed cache write are removed at the next fetch, and a download that
cannot be cached (a read-only cache folder) is used anyway, with a warning. The cache directory
is ``$RNNJAX_CACHE``, else ``$XDG_CACHE_HOME/rnnjax``, else ``~/.cache/rnnjax`` (:func:`default_cache_dir`).

The API key (argument, else ``$STOOQ_APIKEY``) is sent only as the ``apikey`` query parameter: it
never appears in an exception message, a log line (urllib3's own records are redacted while a
request runs) or a file name. Tickers are validated before any request or path is made.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry

from rnnjax.io import atomic_write_text

DEFAULT_BASE_URL = "https://stooq.com"
CSV_PATH = "/q/d/l/"
APIKEY_ENV = "STOOQ_APIKEY"
CACHE_ENV = "RNNJAX_CACHE"
RETRY_STATUSES = (500, 502, 503, 504)
MAX_BYTES = 200 * 2**20  # a daily-price CSV is a few MB; anything past this is refused
STALE_TEMP_S = 3600  # a cache temp file older than this was left by a killed write
_TICKER = re.compile(r"^[A-Za-z0-9.\-^_]{1,40}$")
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection", "urllib3.response",
                    "urllib3.poolmanager")

log = logging.getLogger(__name__)


class StooqError(RuntimeError):
    """A Stooq fetch failed; the message says why and what to do (it never holds the API key)."""


class StooqAuthError(StooqError):
    """An HTML page came back instead of CSV: an API-key request or a browser challenge."""


class StooqNoDataError(StooqError):
    """Stooq has no data for the ticker."""


class StooqRateLimitError(StooqError):
    """HTTP 429 or a "daily hits limit" body."""


class StooqServerError(StooqError):
    """HTTP 5xx after the bounded retries, or another unexpected HTTP status."""


class StooqTimeoutError(StooqError):
    """No answer within the timeout, after the bounded retries."""


class StooqConnectionError(StooqError):
    """The server could not be reached (no network, DNS, refused connection)."""


class StooqFormatError(StooqError):
    """The body is not a CSV with Date and Close columns and at least one row."""


class StaleCacheWarning(UserWarning):
    """A fetch failed and a previously cached file is used instead."""


class FetchResult(NamedTuple):
    """Where the CSV for ``ticker`` is, and whether it came from the cache (``note`` says why)."""

    ticker: str
    path: Path
    from_cache: bool
    note: str | None


def validate_ticker(ticker) -> str:
    """The ticker, lower-cased, if it holds only letters, digits, ``.``, ``-``, ``^``, ``_``; else ``ValueError``."""
    if not isinstance(ticker, str) or not _TICKER.fullmatch(ticker) or not re.search(r"[A-Za-z0-9]", ticker):
        raise ValueError(f"invalid ticker {ticker!r}: use 1-40 letters, digits, '.', '-', '^' or '_' "
                         f"(e.g. 'aapl.us', '^spx')")
    return ticker.lower()


def default_cache_dir() -> Path:
    """``$RNNJAX_CACHE``, else ``$XDG_CACHE_HOME/rnnjax``, else ``~/.cache/rnnjax``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "rnnjax"
    return Path.home() / ".cache" / "rnnjax"


def cache_path(ticker: str, cache_dir=None) -> Path:
    """``<cache_dir>/stooq/<ticker>.csv`` for a validated ticker (the key never enters the name)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "stooq" / f"{validate_ticker(ticker)}.csv"


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` and any ``apikey=...`` query value replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"(apikey=)[^&\s'\"]+", r"\1***", text, flags=re.IGNORECASE)


class _RedactFilter(logging.Filter):
    def __init__(self, secret):
        super().__init__()
        self.secret = secret

    def filter(self, record):
        record.msg, record.args = redact(record.getMessage(), self.secret), None
        return True


@contextlib.contextmanager
def _redacted_urllib3_logs(secret):
    """While active, urllib3's log records (which print request URLs) have the key redacted."""
    flt = _RedactFilter(secret)
    loggers = [logging.getLogger(name) for name in _URLLIB3_LOGGERS]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)


def _excerpt(body: str, secret, n: int = 80) -> str:
    return redact(" ".join(body.strip().split())[:n], secret)


def classify_response(status: int, body: str, content_type: str = "", *, ticker: str, has_key: bool,
                      retries: int = 0, secret: str | None = None, retry_after: str | None = None) -> None:
    """Raise the :class:`StooqError` that fits an answer, or return None if it is a price CSV.

    Args:
      status: HTTP status code.
      body: decoded body.
      content_type: the ``Content-Type`` header.
      ticker: for messages.
      has_key: whether an API key was sent (changes the advice).
      retries: how many retries were allowed (for messages).
      secret: redacted from any excerpt of the body.
      retry_after: the ``Retry-After`` header of a 429, reported in the message.
    """
    head = body.lstrip()[:2000].lower()
    if status == 429 or "daily hits limit" in head or "exceeded the daily" in head:
        raise StooqRateLimitError(
            f"Stooq refused {ticker}: rate limit reached (HTTP {status}"
            f"{', daily hits limit' if status != 429 else ''}). "
            + (f"The server asks to wait {_wait(retry_after)} (Retry-After). " if retry_after else "")
            + "Wait before retrying (Stooq's limit is daily), or use a file you already have with --csv FILE.")
    if status >= 500:
        raise StooqServerError(f"Stooq server error HTTP {status} for {ticker}, still failing after {retries} "
                               f"retries; try again later.")
    is_html = "html" in content_type.lower() or head.startswith("<") or "<html" in head
    advice = ("check the key you gave (argument or $STOOQ_APIKEY)" if has_key else
              f"pass an API key with --apikey KEY / apikey=... or set ${APIKEY_ENV}")
    if status in (401, 403) or (status == 200 and is_html):
        raise StooqAuthError(
            f"Stooq answered {ticker} with {'an HTML page' if is_html else 'a refusal'} (HTTP {status}) instead "
            f"of CSV: an API-key request or a browser challenge. The CSV endpoint needs an API key since March "
            f"2026: {advice}; or download the CSV in a browser and load it with --csv FILE.")
    if status != 200:
        raise StooqServerError(f"Stooq answered {ticker} with unexpected HTTP {status} "
                               f"(body starts {_excerpt(body, secret)!r}); check the base URL and the ticker.")
    if head.startswith("no data"):
        raise StooqNoDataError(f"Stooq has no data for ticker {ticker!r}: check the symbol on stooq.com "
                               f"(US shares end in .us, e.g. 'aapl.us').")
    _check_csv(body, ticker, secret)


def _check_csv(body: str, ticker: str, secret) -> None:
    """A body is a price CSV when it parses, has Date and Close columns, and its rows are complete."""
    what = f"Stooq's answer for {ticker} is not a price CSV with Date and Close columns"
    lines = [ln for ln in body.strip().splitlines() if ln.strip()]
    if not lines:
        raise StooqFormatError(f"{what}: the body is empty.")
    header = [c.strip().lower() for c in lines[0].split(",")]
    if "date" not in header or "close" not in header:
        raise StooqFormatError(f"{what} (starts {_excerpt(body, secret)!r}).")
    if len(lines) < 2:
        raise StooqFormatError(f"{what}: it has a header but no rows.")
    if len(lines[-1].split(",")) != len(header):
        raise StooqFormatError(f"{what}: its last row has {len(lines[-1].split(','))} fields, the header "
                               f"{len(header)} (a partial download?).")
    try:
        pd.read_csv(io.StringIO(body))  # the whole body parses, not only its head
    except (pd.errors.ParserError, ValueError) as err:
        raise StooqFormatError(f"{what}: {redact(str(err), secret)}") from None


def make_session(retries: int = 3, backoff: float = 0.5) -> requests.Session:
    """A ``requests.Session`` whose ``HTTPAdapter`` retries connection errors, read timeouts and 5xx.

    urllib3's ``Retry``: at most ``retries`` retries, sleeping backoff * 2^(n-1) s before retry n;
    429 is not retried (Stooq's limit is daily).
    """
    retry = Retry(total=None, connect=retries, read=retries, status=retries, other=0, redirect=5,
                  backoff_factor=backoff, status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
                  raise_on_status=False, respect_retry_after_header=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "rnnjax (python-requests)"
    return session


def _is_timeout(err: requests.RequestException) -> bool:
    """A read or connect timeout -- not a refused connection, which urllib3 files under ConnectTimeoutError."""
    reason = getattr(err.args[0], "reason", None) if err.args else None
    if isinstance(reason, NewConnectionError):
        return False
    return isinstance(err, requests.Timeout) or isinstance(reason, Urllib3TimeoutError)


def _wait(retry_after: str) -> str:
    """``Retry-After`` as words: seconds, or an HTTP date as given."""
    value = retry_after.strip()
    return f"{int(value)} s" if value.isdigit() else f"until {value}"


def _size(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n:,} bytes"


def _read_body(resp, deadline: float, max_bytes: int, ticker: str, timeout: float, bounds: str = "") -> bytes:
    """The body, read as it arrives: refused past ``max_bytes``, or when it is not complete by ``deadline``.

    A per-read timeout alone never ends a server that trickles a byte a second; this deadline does.
    """
    size = resp.headers.get("Content-Length", "")
    if size.isdigit() and int(size) > max_bytes:
        raise StooqFormatError(f"Stooq's answer for {ticker} is {_size(int(size))}, over the {_size(max_bytes)} "
                               f"limit for a price CSV; check the base URL and ticker.")
    chunks, total = [], 0
    while True:
        if time.monotonic() > deadline:
            raise StooqTimeoutError(f"Stooq's answer for {ticker} was not complete within {timeout:g} s "
                                    f"({total:,} bytes so far){'; ' + bounds + ' attempts' if bounds else ''}; "
                                    f"try again later or raise --timeout.")
        chunk = resp.raw.read1(65536, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise StooqFormatError(f"Stooq's answer for {ticker} passed {_size(max_bytes)}, the limit for a "
                                   f"price CSV; check the base URL and ticker.")


BACKOFF_MAX = 120.0  # seconds: the longest pause between two attempts (urllib3's cap)


def download(ticker: str, *, apikey: str | None = None, base_url: str | None = None, timeout: float = 20.0,
             retries: int = 3, backoff: float = 0.5, max_bytes: int = MAX_BYTES, deadline: float = 60.0) -> str:
    """GET the daily CSV of ``ticker`` and return its text, or raise the fitting :class:`StooqError`.

    ``timeout`` bounds each attempt: the connection and the headers, then the complete body as a
    whole (not only each read, which a server trickling a byte a second would pass). Connection
    errors, timeouts and 5xx answers are retried up to ``retries`` times, pausing
    ``backoff * 2^(n-1)`` s (at most :data:`BACKOFF_MAX`) before retry n; ``deadline`` bounds all
    attempts and pauses together (an attempt gets what is left of it when that is less than
    ``timeout``). Nothing is cached here (see :func:`fetch_csv`). The key is taken from ``apikey``
    or ``$STOOQ_APIKEY``.
    """
    ticker = validate_ticker(ticker)
    key = apikey or os.environ.get(APIKEY_ENV) or None
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    params = {"s": ticker, "i": "d"} | ({"apikey": key} if key else {})
    log.info("fetching %s from %s%s (API key %s)", ticker, base, CSV_PATH, "given" if key else "not given")
    end = time.monotonic() + deadline
    bounds = f"--timeout {timeout:g} s for each attempt, --deadline {deadline:g} s for all {retries + 1}"
    with _redacted_urllib3_logs(key), make_session(0, backoff) as session:
        for attempt in range(retries + 1):
            last = attempt == retries
            per = min(timeout, end - time.monotonic())  # this attempt's bound: the timeout or what is left
            try:
                with session.get(base + CSV_PATH, params=params, timeout=per, stream=True) as resp:
                    if resp.status_code in RETRY_STATUSES and not last:
                        body = None
                    else:
                        raw = _read_body(resp, time.monotonic() + per, max_bytes, ticker, per, bounds)
                        body = raw.decode(resp.encoding or "utf-8", errors="replace")  # no slow charset sniffing
            except requests.RequestException as err:
                kind = type(getattr(err.args[0], "reason", None) or err).__name__ if err.args else type(err).__name__
                if last or _pause(attempt, backoff, end):
                    if _is_timeout(err):
                        raise StooqTimeoutError(f"Stooq did not answer {ticker} within {per:g} s ({bounds} "
                                                f"attempts; {attempt} retries made); try again later or raise "
                                                f"--timeout/--deadline.") from None
                    raise StooqConnectionError(f"could not reach {redact(base, key)} for {ticker} ({kind}, "
                                               f"{attempt} retries within --deadline {deadline:g} s); check the "
                                               f"network, or use a cached file or --csv FILE.") from None
                continue
            if body is None:  # a 5xx answer with retries left
                if _pause(attempt, backoff, end):
                    body = ""
                    retries = attempt
                else:
                    continue
            break
    classify_response(resp.status_code, body, resp.headers.get("Content-Type", ""), ticker=ticker,
                      has_key=key is not None, retries=retries, secret=key, retry_after=resp.headers.get("Retry-After"))
    return body


def _pause(attempt: int, backoff: float, end: float) -> bool:
    """Sleep before retry ``attempt + 1`` (``backoff * 2^attempt`` s, capped); True when the deadline leaves
    no time for it (then nothing is slept)."""
    wait = min(backoff * 2**attempt, BACKOFF_MAX)
    if time.monotonic() + wait >= end:
        return True
    time.sleep(wait)
    return False


def _clean_stale_temps(path: Path) -> None:
    """Remove temporary files of ``path`` left by a killed atomic write (older than :data:`STALE_TEMP_S`)."""
    if not path.parent.is_dir():
        return
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_S:
                tmp.unlink()


def _check_cached(path: Path, ticker: str) -> None:
    """Refuse a cached file that is not a price CSV, naming it and the remedy."""
    try:
        _check_csv(path.read_text(errors="replace"), ticker, None)
    except StooqFormatError as err:
        raise StooqFormatError(f"the cached file {path} is corrupt ({str(err).split(': ', 1)[-1].rstrip('.')}); "
                               f"run again with --refresh to fetch it anew (max_age=0), or delete it") from None


def _cache_date(path: Path) -> str:
    saved = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        last = pd.read_csv(path, usecols=lambda c: c.strip().lower() == "date").iloc[-1, 0]
        return f"saved {saved}, last price date {last}"
    except (ValueError, IndexError, pd.errors.ParserError):
        return f"saved {saved}"


def fetch_csv(ticker: str, *, apikey: str | None = None, cache_dir=None, base_url: str | None = None,
              timeout: float = 20.0, retries: int = 3, backoff: float = 0.5, max_age: float = 12 * 3600,
              use_cache_on_error: bool = True, deadline: float = 60.0) -> FetchResult:
    """Daily CSV of ``ticker``: from the cache if younger than ``max_age`` seconds, else fetched and cached.

    Args:
      ticker: Stooq symbol, e.g. ``"aapl.us"`` (validated before anything else).
      apikey: API key; ``$STOOQ_APIKEY`` when None.
      cache_dir: cache root (:func:`default_cache_dir` when None); files go to ``stooq/<ticker>.csv``.
      base_url: server root, ``https://stooq.com`` by default (tests point it at a local server).
      timeout: seconds allowed to each attempt: for the connection and headers, and again for the complete body.
      retries: bounded retries on connection errors, timeouts and 5xx, with exponential backoff.
      backoff: seconds before the first retry, doubling (at most :data:`BACKOFF_MAX`).
      deadline: seconds allowed to all attempts and pauses together.
      max_age: a cached file younger than this is used without a request; 0 always fetches.
      use_cache_on_error: when the fetch fails and a cached file exists, use it with a
        :class:`StaleCacheWarning` giving its date instead of raising.

    Returns:
      :class:`FetchResult`. A good answer is written atomically; a failed or partial fetch leaves
      any cached file as it was.
    """
    ticker = validate_ticker(ticker)
    path = cache_path(ticker, cache_dir)
    _clean_stale_temps(path)
    if path.is_file() and max_age > 0 and time.time() - path.stat().st_mtime < max_age:
        _check_cached(path, ticker)
        log.info("using cached %s (%s)", path, _cache_date(path))
        return FetchResult(ticker, path, True, None)
    try:
        body = download(ticker, apikey=apikey, base_url=base_url, timeout=timeout, retries=retries, backoff=backoff,
                        deadline=deadline)
    except StooqError as err:
        if not (use_cache_on_error and path.is_file()):
            raise
        _check_cached(path, ticker)
        note = f"fetching {ticker} failed ({err}); using the cached file {path} ({_cache_date(path)})"
        warnings.warn(note, StaleCacheWarning, stacklevel=2)
        log.warning("%s", note)
        return FetchResult(ticker, path, True, note)
    try:
        atomic_write_text(path, body)
    except OSError as err:  # a read-only cache folder: keep the download, say it was not cached
        keep = Path(tempfile.mkdtemp(prefix="rnnjax-stooq-")) / path.name
        keep.write_text(body)
        atexit.register(shutil.rmtree, keep.parent, ignore_errors=True)
        note = f"could not cache {ticker} in {path.parent} ({err.strerror}); this download is used without caching"
        warnings.warn(note, StaleCacheWarning, stacklevel=2)
        log.warning("%s", note)
        return FetchResult(ticker, keep, False, note)
    log.info("cached %s", path)
    return FetchResult(ticker, path, False, None)
