"""Daily closing prices for Experiment 1 (report §3): loading, validation, split, scaling, windows.

Data only -- no model code here. The pipeline, in the report's order:

* :func:`load_prices` -- a date-indexed, sorted ``pandas.Series`` of closes from the embedded
  ``msft.us`` file, a local CSV, or a Stooq ticker (:mod:`rnnjax.data.stooq`), validated by
  :func:`validate_prices`;
* :func:`split_point` -- the temporal 80/20 split, no shuffling;
* :func:`fit_minmax` / :func:`minmax_scale` / :func:`minmax_unscale` -- min-max scaling fitted on
  the train part only;
* :func:`make_forecast_data` -- sliding windows of ``lookback`` values whose target is the next
  value (the price, or the log-return with :func:`log_returns` / :func:`prices_from_returns`).
  Test windows take their inputs from the end of the train part, so every test day is predicted.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rnnjax._checks import check_choice, check_positive_int

if TYPE_CHECKING:
    import pandas as pd  # loading needs pandas; split/scale/windows (used by model code) need only NumPy

EMBEDDED = {"msft.us": "msft.us.csv"}  # name -> package data file in rnnjax/data
DEFAULT_SOURCE = "msft.us"
TARGETS = ("price", "returns")
DATE_COLUMNS = ("date", "datetime", "timestamp")  # first match wins, case-insensitive
CLOSE_COLUMNS = ("close", "adj close", "adj_close", "adjclose")


class PriceDataWarning(UserWarning):
    """The loaded prices needed fixing (duplicates, unsorted rows, dropped rows) or came from a stale cache."""


class PriceData(NamedTuple):
    """Validated closes and where they came from."""

    closes: pd.Series  # float64, DatetimeIndex named "date", strictly increasing, all > 0
    source: str  # "embedded:msft.us", "csv:<path>" or "stooq:<ticker>"
    notes: tuple[str, ...]  # what validation fixed or dropped (empty when the file was clean)


# --------------------------------------------------------------------------------------------
# Loading and validation


def embedded_path(name: str = DEFAULT_SOURCE) -> Path:
    """Path of an embedded price file (package data), e.g. ``"msft.us"``."""
    check_choice("embedded dataset", name, EMBEDDED)
    return Path(str(resources.files("rnnjax.data").joinpath(EMBEDDED[name])))


def _lines(rows, limit: int = 10) -> str:
    """CSV line numbers (header = line 1) of 0-based data rows, the first ``limit`` of them."""
    rows = [int(r) + 2 for r in rows]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(map(str, rows[:limit])) + more


def _count(n: int, what: str, plural: str | None = None) -> str:
    """``1 date``, ``2 dates``."""
    return f"{n} {what if n == 1 else plural or what + 's'}"


def _where(rows) -> str:
    """``line 5`` or ``lines 4, 6``."""
    return f"line{'s' if len(rows) > 1 else ''} {_lines(rows)}"


def _find_column(columns, candidates, what: str, name: str) -> str:
    lowered = {str(c).strip().lower(): c for c in columns}
    for cand in candidates:
        if cand in lowered:
            # 'close' and 'Close' (or a repeated 'Close', which pandas reads as 'Close.1'): which one is meant?
            same = [str(c) for c in columns if re.fullmatch(re.escape(cand) + r"(\.\d+)?", str(c).strip().lower())]
            if len(same) > 1:
                raise ValueError(f"{name}: {len(same)} {what} columns {same} (names compared without case); "
                                 f"keep one of them or rename the others")
            return lowered[cand]
    raise ValueError(f"{name}: no {what} column; expected one of {list(candidates)} (any case), "
                     f"found columns {[str(c) for c in columns]}")


_NUMERIC_DATE = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})(?:[ T].*)?$"  # 01/02/2000, 1.2.2000, 01-02-00


def _parse_dates(raw, date_format: str | None, name: str, column: str):
    """Dates of ``raw`` (strings); day-first vs month-first is read from the data or ``date_format``.

    ``01/02/2000`` is 1 February or 2 January: when no row settles it (a first field > 12 means
    day-first, a second field > 12 month-first), or rows disagree, ``ValueError`` asks for a format.
    """
    import pandas as pd

    if date_format:
        return pd.to_datetime(raw, errors="coerce", format=date_format)
    parts = raw.str.extract(_NUMERIC_DATE)
    numeric = parts[0].notna().to_numpy()
    dayfirst = False
    if numeric.any():
        first, second = (parts[i][numeric].astype(int).to_numpy() for i in (0, 1))
        lines = np.flatnonzero(numeric)
        day_rows, month_rows = lines[first > 12], lines[second > 12]
        if len(day_rows) and len(month_rows):
            raise ValueError(f"{name}: dates in column {column!r} mix day-first ({_where(day_rows[:1])}: "
                             f"{raw.iloc[day_rows[0]]!r}) and month-first ({_where(month_rows[:1])}: "
                             f"{raw.iloc[month_rows[0]]!r}); fix the file or give --date-format")
        if not len(day_rows) and not len(month_rows) and (first != second).any():
            row = lines[np.argmax(first != second)]
            raise ValueError(f"{name}: date {raw.iloc[row]!r} ({_where([row])}) in column {column!r} can be "
                             f"read day-first or month-first, and no row settles it; say which with "
                             f"--date-format '%d/%m/%Y' or '%m/%d/%Y' (date_format=...)")
        dayfirst = bool(len(day_rows))
    return pd.to_datetime(raw, errors="coerce", format="mixed", dayfirst=dayfirst)


def validate_prices(frame: pd.DataFrame, *, name: str = "prices", drop_invalid: bool = False,
                    date_format: str | None = None):
    """Turn a raw table into a clean series of closes; returns ``(closes, notes)``.

    Checks, each reported with CSV line numbers (header = line 1):

    * a date column and a close column exist (names matched case-insensitively);
    * dates are not ambiguous (day-first vs month-first, see :func:`_parse_dates`);
    * every date parses and every close is a positive finite number -- otherwise ``ValueError``,
      or, with ``drop_invalid=True``, those rows are dropped and listed in ``notes``;
    * duplicate dates keep their last row, and unsorted rows are sorted; both go in ``notes``.

    Args:
      frame: the table as read (any dtypes).
      name: what to call the data in messages (a file name).
      drop_invalid: drop rows with a bad date or close instead of raising.
      date_format: a ``strftime`` format of the dates (e.g. ``"%d/%m/%Y"``); needed when dates such as
        ``01/02/2000`` could be read day-first or month-first and no row settles it.

    Returns:
      ``(closes, notes)``: a float64 ``Series`` named ``"close"`` on a strictly increasing
      ``DatetimeIndex`` named ``"date"``, and a tuple of human-readable notes.
    """
    import pandas as pd

    if len(frame) == 0:
        raise ValueError(f"{name}: no data rows")
    date_col = _find_column(frame.columns, DATE_COLUMNS, "date", name)
    close_col = _find_column(frame.columns, CLOSE_COLUMNS, "close", name)
    notes: list[str] = []
    raw_dates = frame[date_col].astype("string").str.strip()
    dates = _parse_dates(raw_dates, date_format, name, str(date_col))
    closes = pd.to_numeric(frame[close_col], errors="coerce").astype("float64")
    pos = np.arange(len(frame))

    problems = []
    bad_date = dates.isna().to_numpy()
    if bad_date.any():
        problems.append(f"{_count(int(bad_date.sum()), 'unparseable date')} in column {date_col!r} "
                        f"({_where(pos[bad_date])})")
    missing = closes.isna().to_numpy() & ~bad_date
    if missing.any():
        problems.append(f"{_count(int(missing.sum()), 'missing or non-numeric close')} in column {close_col!r} "
                        f"({_where(pos[missing])})")
    infinite = np.isinf(closes.to_numpy()) & ~bad_date
    if infinite.any():
        problems.append(f"{_count(int(infinite.sum()), 'infinite close')} in column {close_col!r} "
                        f"({_where(pos[infinite])})")
    nonpos = (closes <= 0).to_numpy() & ~bad_date & ~infinite
    if nonpos.any():
        problems.append(f"{_count(int(nonpos.sum()), 'non-positive close')} in column {close_col!r} "
                        f"({_where(pos[nonpos])})")
    if problems:
        if not drop_invalid:
            raise ValueError(f"{name}: " + "; ".join(problems)
                             + ". Fix the file, or drop these rows explicitly (drop_invalid=True, --drop-invalid).")
        notes.append("dropped " + "; ".join(problems))
    keep = ~(bad_date | missing | nonpos | infinite)
    series = pd.Series(closes.to_numpy()[keep], index=pd.DatetimeIndex(dates.to_numpy()[keep], name="date"),
                       name="close")
    rows = pos[keep]
    if len(series) == 0:
        raise ValueError(f"{name}: no valid rows left after dropping invalid ones")

    if not series.index.is_monotonic_increasing:
        n_back = int((np.diff(series.index.asi8) < 0).sum())
        notes.append(f"rows were not in date order ({_count(n_back, 'step')} back in time); sorted by date")
        order = np.argsort(series.index.asi8, kind="stable")
        series, rows = series.iloc[order], rows[order]
    dup = series.index.duplicated(keep="last")
    if dup.any():
        notes.append(f"{_count(int(dup.sum()), 'duplicate date')} (first: {series.index[dup][0].date()}); kept the "
                     f"last row of each, dropped {_where(np.sort(rows[dup]))}")
        series = series[~dup]
    return series, tuple(notes)


def read_price_csv(path, *, drop_invalid: bool = False, name: str | None = None, date_format: str | None = None):
    """Read and validate a price CSV (a path, or CSV text); returns ``(closes, notes)``.

    Stooq's layout (``Date,Open,High,Low,Close,Volume[,OpenInt]``) or any CSV with a date column
    and a close column. See :func:`validate_prices`.
    """
    import pandas as pd

    is_text = isinstance(path, str) and "\n" in path
    label = name or ("CSV text" if is_text else str(path))
    if not is_text and not Path(path).is_file():
        raise ValueError(f"price CSV {label!r} does not exist or is not a file")
    try:
        frame = pd.read_csv(io.StringIO(path) if is_text else path, dtype=str, keep_default_na=False,
                            skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{label}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{label}: not a readable CSV ({err})") from None
    return validate_prices(frame, name=label, drop_invalid=drop_invalid, date_format=date_format)


def load_price_data(*, csv=None, ticker: str | None = None, embedded: str = DEFAULT_SOURCE,
                    drop_invalid: bool = False, apikey: str | None = None, date_format: str | None = None,
                    **stooq_options) -> PriceData:
    """Load validated daily closes from one source: ``csv``, else ``ticker``, else ``embedded``.

    Args:
      csv: path of a local CSV (see :func:`read_price_csv`).
      ticker: a Stooq ticker such as ``"aapl.us"``, fetched (and cached) by
        :func:`rnnjax.data.stooq.fetch_csv`; ``apikey`` or ``$STOOQ_APIKEY`` supplies the key.
      embedded: name of an embedded dataset (default ``"msft.us"``), used when neither is given.
      drop_invalid: drop rows with unparseable dates or missing/non-positive/infinite closes instead of raising.
      date_format: ``strftime`` format of the dates, for files whose dates are ambiguous (01/02/2000).
      apikey: Stooq API key (never logged or written).
      **stooq_options: passed to :func:`rnnjax.data.stooq.fetch_csv` (``cache_dir``, ``base_url``,
        ``timeout``, ``retries``, ...).

    Returns:
      :class:`PriceData`. Notes about fixed rows are also issued as :class:`PriceDataWarning`.
    """
    if csv is not None and ticker is not None:
        raise ValueError("give either csv or ticker, not both")
    if stooq_options and ticker is None:
        raise ValueError(f"Stooq options {sorted(stooq_options)} need a ticker")
    if csv is not None:
        source, (closes, notes) = f"csv:{os.fspath(csv)}", read_price_csv(csv, drop_invalid=drop_invalid,
                                                                        date_format=date_format)
    elif ticker is not None:
        from rnnjax.data import stooq  # requests is imported only when a ticker is asked for

        fetched = stooq.fetch_csv(ticker, apikey=apikey, **stooq_options)
        try:
            closes, notes = read_price_csv(fetched.path, drop_invalid=drop_invalid, name=f"Stooq {fetched.ticker}")
        except ValueError as err:
            if not fetched.from_cache:
                raise
            raise ValueError(f"the cached file {fetched.path} is unreadable ({err}); fetch it again with "
                             f"--refresh (max_age=0), or delete it") from None
        source = f"stooq:{fetched.ticker}"
    else:
        closes, notes = read_price_csv(embedded_path(embedded), drop_invalid=drop_invalid,
                                       name=f"embedded {embedded}")
        source = f"embedded:{embedded}"
    for note in notes:
        warnings.warn(f"{source}: {note}", PriceDataWarning, stacklevel=2)
    if ticker is not None and fetched.note:  # a stale cache was used (already warned by fetch_csv)
        notes = (fetched.note,) + notes
    return PriceData(closes, source, notes)


def load_prices(**kwargs) -> pd.Series:
    """The closes of :func:`load_price_data` (same arguments): a sorted, date-indexed Series."""
    return load_price_data(**kwargs).closes


# --------------------------------------------------------------------------------------------
# Split, scaling, returns, windows


def split_point(n_rows: int, train_fraction: float = 0.8) -> int:
    """Rows [0, n_train) are train, [n_train, n_rows) test: n_train = floor(train_fraction * n_rows) (§3)."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    return int(math.floor(train_fraction * n_rows + 1e-9))


class MinMaxScaler(NamedTuple):
    """Min-max scaling z = (x - lo) / (hi - lo), fitted on the train part only (report §3)."""

    lo: float
    hi: float


def fit_minmax(train_values) -> MinMaxScaler:
    """lo = min, hi = max of the train values; ``ValueError`` if they are equal (no range to scale)."""
    values = np.asarray(train_values, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("train_values must be a non-empty array of finite numbers")
    lo, hi = float(values.min()), float(values.max())
    if not math.isfinite(hi - lo):
        raise ValueError(f"train values span {lo:g}..{hi:g}, too wide to scale in float64")
    if not hi > lo:
        raise ValueError(f"train values are constant ({lo}); min-max scaling needs max > min")
    return MinMaxScaler(lo, hi)


def minmax_scale(scaler: MinMaxScaler, x):
    """z = (x - lo) / (hi - lo)."""
    return (x - scaler.lo) / (scaler.hi - scaler.lo)


def minmax_unscale(scaler: MinMaxScaler, z):
    """x = lo + z (hi - lo), the exact inverse of :func:`minmax_scale`."""
    return scaler.lo + z * (scaler.hi - scaler.lo)


def log_returns(prices) -> np.ndarray:
    """r_t = log(p_t / p_{t-1}) for t = 1..N-1: shape (N-1,) from prices (N,)."""
    p = np.asarray(prices, dtype=np.float64)
    return np.diff(np.log(p))  # r_t = log p_t - log p_{t-1}


def prices_from_returns(previous_prices, returns):
    """p_t = p_{t-1} exp(r_t): rebuild prices from the previous day's price and a log-return."""
    return previous_prices * np.exp(returns)


class ForecastData(NamedTuple):
    """Windows for one-step-ahead forecasting, scaled, with the price-series day of every target.

    ``x_*``: (M, L, 1) float32 scaled inputs. ``y_*``: (M, 1) -- the next value -- or, for
    many-to-many, (M, L, 1) -- the next value at every step of the window. ``*_days``: (M,) int
    positions in the price series of each window's (last) target; day i's window holds the
    values of days i-L .. i-1. The modelled value is the price (``target="price"``) or the
    log-return r_i = log(p_i / p_{i-1}) (``"returns"``), scaled with ``scaler``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_days: np.ndarray
    test_days: np.ndarray
    scaler: MinMaxScaler
    target: str
    n_train_rows: int


def window_days(values, days, lookback: int, *, offset: int = 0, many_to_many: bool = False):
    """Inputs and targets for target days ``days`` of a series ``values`` whose item j is day j + offset.

    Day i's window: x = values of days i-L .. i-1; y = value of day i (many-to-one), or the values
    of days i-L+1 .. i, the next value at every step (many-to-many). Returns ``(x (M, L), y)``.
    """
    v = np.asarray(values)
    days = np.asarray(days)
    idx = days[:, None] - offset + np.arange(-lookback, 0)[None, :]  # (M, L): days i-L .. i-1
    if (idx.size and idx.min() < 0) or (days.size and days.max() - offset >= len(v)):
        raise ValueError(f"window days {days.min()}..{days.max()} with lookback {lookback} fall outside the "
                         f"series (days {offset}..{offset + len(v) - 1})")
    return v[idx], (v[idx + 1] if many_to_many else v[days - offset])


def make_forecast_data(prices, *, lookback: int = 20, train_fraction: float = 0.8, target: str = "price",
                       many_to_many: bool = False) -> ForecastData:
    """Split, scale (train-only min-max), and window a price series for one-step-ahead forecasting.

    Train targets are days [first, n_train), first = lookback (+1 for returns, whose first value
    is day 1); test targets are every day in [n_train, N), their inputs reaching back into the
    train part (past values only, so no leakage). The scaler is fitted on the modelled values of
    train days only.

    Args:
      prices: closes (N,), all > 0.
      lookback: window length L.
      train_fraction: share of rows in the train part.
      target: ``"price"`` (next close) or ``"returns"`` (next log-return).
      many_to_many: targets at every step of the window instead of the last only.

    Returns:
      :class:`ForecastData`.
    """
    check_positive_int("lookback", lookback)
    check_choice("target", target, TARGETS)
    p = np.asarray(prices, dtype=np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("prices must be a 1-D array of positive finite numbers")
    n = len(p)
    n_train = split_point(n, train_fraction)
    offset = 1 if target == "returns" else 0
    first = lookback + offset
    if n_train - first < 1 or n - n_train < 1:
        raise ValueError(
            f"too few rows: {n} rows with train_fraction {train_fraction} give {n_train} train and "
            f"{n - n_train} test rows; lookback {lookback} with target {target!r} needs at least "
            f"{first + 1} train rows and 1 test row")
    values = log_returns(p) if target == "returns" else p  # item j is day j + offset
    scaler = fit_minmax(values[: n_train - offset])
    z = minmax_scale(scaler, values)
    train_days, test_days = np.arange(first, n_train), np.arange(n_train, n)
    x_tr, y_tr = window_days(z, train_days, lookback, offset=offset, many_to_many=many_to_many)
    x_te, y_te = window_days(z, test_days, lookback, offset=offset, many_to_many=many_to_many)
    f32 = lambda a: np.asarray(a, np.float32)[..., None]  # add the feature / output axis
    with np.errstate(over="ignore"):
        big = ~np.isfinite(z.astype(np.float32))
    if big.any():
        day = int(np.argmax(big)) + offset
        raise ValueError(f"the {target} of row {day} of the sorted series (value {values[day - offset]:g}) is "
                         f"{z[day - offset]:.3g} after min-max scaling on the train part, beyond float32; the "
                         f"series is too extreme to model (check that row)")
    return ForecastData(f32(x_tr), f32(y_tr), f32(x_te), f32(y_te), train_days, test_days, scaler, target, n_train)


def values_to_prices(data: ForecastData, prices, days, predicted_scaled):
    """Scaled predictions of the modelled value for ``days`` -> prices: unscale, then rebuild returns.

    For ``target="price"``, p_i = unscale(z_i); for ``"returns"``, p_i = p_{i-1} exp(unscale(z_i)).
    ``predicted_scaled`` may carry leading axes (e.g. seeds): (..., M).
    """
    v = minmax_unscale(data.scaler, np.asarray(predicted_scaled, dtype=np.float64))
    if data.target == "price":
        return v
    return prices_from_returns(np.asarray(prices, dtype=np.float64)[np.asarray(days) - 1], v)
