"""Price data: loading and validation, split, min-max scaler, windows, returns (hand-checked cases)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rnnjax.data import prices as P


def write(tmp_path, text, name="p.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- embedded data

def test_embedded_msft_matches_spec():
    data = P.load_price_data()
    s = data.closes
    assert data.source == "embedded:msft.us" and data.notes == ()
    assert len(s) == 7983 and s.name == "close" and s.index.name == "date"
    assert str(s.index[0].date()) == "1986-03-13" and str(s.index[-1].date()) == "2017-11-10"
    assert s.index.is_monotonic_increasing and s.index.is_unique and (s > 0).all()
    assert s.iloc[0] == pytest.approx(0.07533)
    # the 80/20 split puts test prices (20.4-84.6) above the train maximum (44.8) (docs/report_restated.md)
    n_train = P.split_point(len(s))
    assert n_train == 6386
    assert s.iloc[:n_train].max() == pytest.approx(44.814)
    assert s.iloc[n_train:].min() == pytest.approx(20.368) and s.iloc[n_train:].max() == pytest.approx(84.56)


def test_embedded_file_is_package_data():
    path = P.embedded_path("msft.us")
    assert path.is_file() and path.name == "msft.us.csv" and path.parent.name == "data"
    with pytest.raises(ValueError, match="unknown embedded dataset"):
        P.embedded_path("nope")


# ----------------------------------------------------------------------------- CSV validation

def test_stooq_layout_csv(tmp_path):
    path = write(tmp_path, "Date,Open,High,Low,Close,Volume,OpenInt\n"
                           "2020-01-02,1,1,1,10.5,5,0\n2020-01-03,1,1,1,11,5,0\n")
    data = P.load_price_data(csv=path)
    assert data.source == f"csv:{path}"
    assert list(data.closes) == [10.5, 11.0]
    assert list(data.closes.index.strftime("%Y-%m-%d")) == ["2020-01-02", "2020-01-03"]


def test_any_csv_with_date_and_close_columns_case_insensitive(tmp_path):
    path = write(tmp_path, "ticker, DATE ,CLOSE,other\nx,2021-05-03,3.5,a\nx,2021-05-04,4.0,b\n")
    assert list(P.load_prices(csv=path)) == [3.5, 4.0]


@pytest.mark.parametrize("text, missing", [("Date,Open\n2020-01-01,1\n", "close"),
                                           ("Day,Close\n2020-01-01,1\n", "date")])
def test_missing_column(tmp_path, text, missing):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"p\.csv: no {missing} column.*found columns \["):
        P.load_prices(csv=path)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        P.load_prices(csv=tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="empty"):
        P.load_prices(csv=write(tmp_path, ""))
    with pytest.raises(ValueError, match="no data rows"):
        P.load_prices(csv=write(tmp_path, "Date,Close\n"))


BAD = ("Date,Close\n"
       "2020-01-01,10\n"     # line 2
       "not-a-date,11\n"     # line 3: bad date
       "2020-01-03,\n"       # line 4: missing close
       "2020-01-04,-1\n"     # line 5: non-positive
       "2020-01-05,abc\n"    # line 6: non-numeric
       "2020-01-06,0\n"      # line 7: non-positive
       "2020-01-07,12\n")    # line 8


def test_bad_rows_rejected_with_their_line_numbers(tmp_path):
    path = write(tmp_path, BAD)
    with pytest.raises(ValueError) as err:
        P.load_prices(csv=path)
    msg = str(err.value)
    assert "1 unparseable date in column 'Date' (line 3)" in msg
    assert "2 missing or non-numeric closes in column 'Close' (lines 4, 6)" in msg
    assert "2 non-positive closes in column 'Close' (lines 5, 7)" in msg
    assert "drop_invalid" in msg


def test_bad_rows_dropped_on_request(tmp_path):
    path = write(tmp_path, BAD)
    with pytest.warns(P.PriceDataWarning, match="dropped"):
        data = P.load_price_data(csv=path, drop_invalid=True)
    assert list(data.closes) == [10.0, 12.0]
    assert list(data.closes.index.strftime("%Y-%m-%d")) == ["2020-01-01", "2020-01-07"]
    assert len(data.notes) == 1 and "line 3" in data.notes[0] and "lines 5, 7" in data.notes[0]


def test_duplicates_and_unsorted_rows_are_fixed_and_reported(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-03,3\n2020-01-01,1\n2020-01-02,2\n2020-01-02,2.5\n2020-01-04,4\n")
    with pytest.warns(P.PriceDataWarning) as rec:
        data = P.load_price_data(csv=path)
    assert list(data.closes) == [1.0, 2.5, 3.0, 4.0]  # sorted; the duplicate keeps its last row
    assert data.closes.index.is_unique and data.closes.index.is_monotonic_increasing
    assert any("not in date order" in n for n in data.notes)
    dup = [n for n in data.notes if "duplicate" in n]
    assert dup == ["1 duplicate date (first: 2020-01-02); kept the last row of each, dropped line 4"]
    assert len(rec) == 2


def test_line_numbers_are_listed_up_to_ten():
    assert P._lines(range(12)) == "2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 2 more"


# ----------------------------------------------------------------------------- split and scaler

@pytest.mark.parametrize("n, frac, want", [(10, 0.8, 8), (7983, 0.8, 6386), (5, 0.5, 2), (3, 0.7, 2)])
def test_split_point(n, frac, want):
    assert P.split_point(n, frac) == want


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_checked(frac):
    with pytest.raises(ValueError, match="train_fraction"):
        P.split_point(10, frac)


def test_minmax_round_trip_and_fit_on_train_only():
    rng = np.random.default_rng(0)
    train, test = rng.uniform(5, 50, 100), rng.uniform(0, 200, 50)
    sc = P.fit_minmax(train)
    assert (sc.lo, sc.hi) == (train.min(), train.max())
    z = P.minmax_scale(sc, train)
    assert z.min() == 0.0 and z.max() == 1.0
    np.testing.assert_allclose(P.minmax_unscale(sc, P.minmax_scale(sc, test)), test, rtol=1e-13)
    assert P.minmax_scale(sc, np.array([0.0, 200.0])).tolist() == pytest.approx(
        [(0 - sc.lo) / (sc.hi - sc.lo), (200 - sc.lo) / (sc.hi - sc.lo)])


def test_minmax_constant_train_refused():
    with pytest.raises(ValueError, match="constant"):
        P.fit_minmax([3.0, 3.0])


# ----------------------------------------------------------------------------- windows

def test_price_windows_every_index():
    prices = np.arange(1.0, 11.0)  # p_i = i + 1, days 0..9
    d = P.make_forecast_data(prices, lookback=3, train_fraction=0.6)
    # n_train = 6: train rows days 0..5, test days 6..9; scaler on days 0..5 -> lo 1, hi 6
    assert d.n_train_rows == 6 and d.scaler == (1.0, 6.0)
    assert d.train_days.tolist() == [3, 4, 5] and d.test_days.tolist() == [6, 7, 8, 9]
    unscale = lambda a: np.round(P.minmax_unscale(d.scaler, a[..., 0].astype(np.float64)), 5).tolist()
    assert unscale(d.x_train) == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert unscale(d.y_train) == [4, 5, 6]
    assert unscale(d.x_test) == [[4, 5, 6], [5, 6, 7], [6, 7, 8], [7, 8, 9]]  # context from the train tail
    assert unscale(d.y_test) == [7, 8, 9, 10]  # every test day is predicted
    assert d.x_train.shape == (3, 3, 1) and d.y_train.shape == (3, 1) and d.x_train.dtype == np.float32
    np.testing.assert_allclose(d.x_train[0, :, 0], [0.0, 0.2, 0.4], atol=1e-7)  # z = (p - 1) / 5


def test_many_to_many_targets_are_the_next_value_at_every_step():
    prices = np.arange(1.0, 11.0)
    d = P.make_forecast_data(prices, lookback=3, train_fraction=0.6, many_to_many=True)
    unscale = lambda a: np.round(P.minmax_unscale(d.scaler, a[..., 0].astype(np.float64)), 5).tolist()
    assert d.y_train.shape == (3, 3, 1)
    assert unscale(d.y_train) == [[2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert unscale(d.y_test) == [[5, 6, 7], [6, 7, 8], [7, 8, 9], [8, 9, 10]]
    assert unscale(d.x_test) == [[4, 5, 6], [5, 6, 7], [6, 7, 8], [7, 8, 9]]


def test_return_windows_and_price_rebuild():
    prices = np.array([float(math.factorial(i + 1)) for i in range(10)])  # p_i = (i+1)!, so r_i = log(i+1)
    d = P.make_forecast_data(prices, lookback=3, train_fraction=0.6, target="returns")
    # returns start at day 1; the first train target needs r_{i-3} with i-3 >= 1 -> day 4
    assert d.train_days.tolist() == [4, 5] and d.test_days.tolist() == [6, 7, 8, 9]
    assert d.scaler.lo == pytest.approx(math.log(2)) and d.scaler.hi == pytest.approx(math.log(6))  # r_1..r_5
    unscale = lambda a: np.exp(P.minmax_unscale(d.scaler, a[..., 0].astype(np.float64)))
    np.testing.assert_allclose(unscale(d.x_train), [[2, 3, 4], [3, 4, 5]], rtol=1e-5)  # exp(r_{i-3..i-1})
    np.testing.assert_allclose(unscale(d.y_test), [7, 8, 9, 10], rtol=1e-5)
    rebuilt = P.values_to_prices(d, prices, d.test_days, d.y_test[:, 0])
    np.testing.assert_allclose(rebuilt, prices[6:], rtol=1e-5)  # p_{i-1} exp(r_i) = p_i


def test_returns_round_trip():
    p = np.array([10.0, 11.0, 9.5, 12.25])
    r = P.log_returns(p)
    np.testing.assert_allclose(r, np.log(p[1:] / p[:-1]))
    np.testing.assert_allclose(P.prices_from_returns(p[:-1], r), p[1:], rtol=1e-14)


def test_too_few_rows_gives_the_numbers():
    with pytest.raises(ValueError, match=r"too few rows: 20 rows with train_fraction 0.8 give 16 train and 4 test "
                                         r"rows; lookback 20 .* needs at least 21 train rows"):
        P.make_forecast_data(np.arange(1.0, 21.0), lookback=20)
    with pytest.raises(ValueError, match="at least 22 train rows"):
        P.make_forecast_data(np.arange(1.0, 26.0), lookback=20, target="returns")


@pytest.mark.parametrize("bad", [np.array([1.0, -1.0, 2.0] * 10), np.array([1.0, np.nan] * 15), np.ones((3, 10))])
def test_bad_price_arrays(bad):
    with pytest.raises(ValueError, match="prices must be"):
        P.make_forecast_data(bad, lookback=2)


def test_series_roundtrip_through_pandas(tmp_path):
    s = pd.Series([1.0, 2.0], index=pd.to_datetime(["2020-01-01", "2020-01-02"]))
    path = tmp_path / "s.csv"
    s.rename("Close").rename_axis("Date").to_csv(path)
    assert P.load_prices(csv=path).tolist() == [1.0, 2.0]
