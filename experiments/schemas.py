"""The results the page reads: one typed schema per JSON file, checked when the file is read.

Each experiment's ``metrics.json`` is declared here as a :class:`typing.TypedDict` holding the keys the
page (:mod:`experiments.report_sections`) and the docs' blocks (:mod:`experiments.report_docs`) read;
:func:`load` reads a file and checks it against its schema, so a missing or mistyped key is one
``ValueError`` naming the file and the key path (``runs/x/metrics.json: missing 'seeds.count'``), never a
``KeyError`` deep in the page code. Keys a file may lack are ``NotRequired``; a measured number that went
non-finite is null in the JSON (:data:`Num`). Keys the page does not read are not checked.
"""

import json
import types
from pathlib import Path
from typing import NotRequired, TypedDict, Union, get_args, get_origin, get_type_hints, is_typeddict

Num = float | None  # a measured number: null where the run went non-finite
Count = int | None

# Gradient flossing's three conditions (experiments/flossing.py): the page's letter and the JSON's key.
CONDITIONS = (("a", "plain"), ("b", "floss_before"), ("c", "floss_before_and_during"))


# ---------------------------------------------------------------------- verdicts (every experiment)

class Verdict(TypedDict):
    """One tested claim of an experiment (issue 19): ``metrics.json["verdicts"]`` is a list of these.

    ``id`` is the same under every ``--seed-base``, so the page can set two draws side by side;
    ``verdict`` is :func:`rnnjax.stats.verdict`'s word (a verdict word only where the test rejects at 5%,
    else "not distinguishable with n seeds"); ``evidence`` the numbers the test used, in words
    ("12/16 vs 0/16"); ``p`` the test's p-value (null where no test applies)."""
    id: str
    claim: str
    test: str
    evidence: str
    p: Num
    verdict: str


# ------------------------------------------------------------------------------- stock_forecast

class Data(TypedDict):
    train_range: list[str]
    test_range: list[str]
    n_train_rows: int
    n_test_rows: int
    train_close_max: float
    test_close_min: float
    test_close_max: float
    test_close_max_scaled: float


class NWSize(TypedDict):
    """The Newey-West DM test's simulated size at the tabulated phi nearest an observed r_1."""
    phi: float
    rate: float
    ci: list[float]


class DM(TypedDict):
    """Both DM tests against persistence (:mod:`rnnjax.stats`): fixed-b (the verdict's), Newey-West beside it."""
    b: float
    critical_value: float
    seeds_tested: int
    seeds_significantly_worse: int
    seeds_significantly_better: int
    fixed_b_statistic_min: Num
    fixed_b_statistic_max: Num
    fixed_b_p_value_min: Num
    fixed_b_p_value_max: Num
    statistic_min: Num
    statistic_max: Num
    p_value_min: Num
    p_value_max: Num
    lags_min: Count
    lags_max: Count
    lag1_autocorr_min: Num
    lag1_autocorr_max: Num
    nw_size: NWSize | None
    rmse_ratio_min: Num
    rmse_ratio_max: Num


class SizeRow(TypedDict):
    phi: float
    reps: int
    nw_rate: float
    nw_ci: list[float]
    fixed_b_rate: float
    fixed_b_ci: list[float]
    nw_median_lag: float


class SizeTable(TypedDict):
    """Both DM tests' rejection rates under the null (``rnnjax.data/dm_size.json``, copied into the run)."""
    n: int
    reps: int
    b: float
    command: str
    rows: list[SizeRow]


class SeedStatus(TypedDict):
    status: str


class Seeds(TypedDict):
    count: int
    status: list[SeedStatus]


class Clipping1(TypedDict):
    tau: float
    epochs_clipped: list[int]
    grad_norm_first: list[Num]
    grad_norm_last: list[Num]


class Config1(TypedDict):
    lookback: int
    hidden: int
    lr: float
    epochs: int
    clip: float


class Timings(TypedDict):
    total: NotRequired[float]


class Run(TypedDict):
    """What every experiment's metrics.json holds: its run time (the page's last table)."""
    timings_s: NotRequired[Timings]
    wall_s: NotRequired[float]


class Forecast(TypedDict):
    """A forecaster's test errors and its verdict against persistence (Experiment 1 and each variant)."""
    rmse: Num
    rmse_min: Num
    rmse_max: Num
    mae: Num
    mae_min: Num
    mae_max: Num
    train_rmse: Num
    persistence_rmse: float
    seeds_beating_persistence: int
    verdict_vs_persistence: str
    dm_vs_persistence: DM


class StockForecast(Forecast, Run):
    config: Config1
    verdicts: list[Verdict]
    nw_size_table: SizeTable
    data: Data
    seeds: Seeds
    persistence_mae: float
    train_persistence_rmse: float
    final_loss_per_seed: list[Num]
    clipping: Clipping1


# ------------------------------------------------------------------------------- stock_variants

class Variant(Forecast):
    label: str
    flags: str
    seeds: int


class ConfigV(TypedDict):
    seeds: int
    seed_base: int


class StockVariants(Run):
    config: ConfigV
    variants: dict[str, Variant]
    verdicts: list[Verdict]


class ImpliedReturns(TypedDict):
    std: list[Num]
    actual_std: float
    corr: list[Num]
    sign_agreement: list[Num]


class VariantRun(TypedDict):
    """One variant's own ``stock_variants/<name>/metrics.json`` (a :class:`StockForecast` run)."""
    implied_returns: ImpliedReturns
    clipping: Clipping1


# ------------------------------------------------------------------------------- gradient_stability

class Claim(TypedDict):
    rho: float
    claim: str
    test: str
    verdict: str


class Curve(TypedDict):
    rho: float
    start: Num
    end: Num
    start_per_seed: list[Num]
    start_seed_min: Num
    start_seed_max: Num
    end_seed_min: Num
    end_seed_max: Num
    trend: str | None  # None where the median curve is not finite
    change_decades: Num
    decades: Num
    loss_start_median: Num
    loss_last_finite_median: Num
    init_W_hh_norm2_median: Num
    init_spectral_radius_median: Num
    init_top_lyapunov_median: Num


class Config2(TypedDict):
    hidden_size: int
    learning_rate: float
    num_steps: int
    segment_length: int
    seeds: list[int]
    norm: str | int
    stability_chars: int


class GradientStability(Run):
    config: Config2
    claims: list[Claim]
    claims_agree: int
    claims_total: int
    per_rho: list[Curve]
    verdicts: list[Verdict]


# ------------------------------------------------------------------------------- gradient_spectra

class LagRow(TypedDict):
    rho: float
    lyapunov_top_median: Num
    lyapunov_top_seed_min: Num
    lyapunov_top_seed_max: Num
    lyapunov_top_per_seed: list[Num]
    lag_profile_slope: Num
    log10_grad_ratio_at_max_lag: Num
    log10_bound_at_max_lag: Num
    mean_field_relu_lyapunov: Num
    verdict: str


class PhaseSample(TypedDict):
    rho: float
    lyapunov_top_median: Num
    log_radius_median: Num
    log_gamma_norm_median: Num
    length: NotRequired[int]


class VarianceReading(TypedDict):
    rhos: list[float]
    scale: float
    effective_rhos: list[float]
    length: int
    lyapunov_top_median: list[Num]
    lyapunov_top_seed_min: list[Num]
    lyapunov_top_seed_max: list[Num]
    verdict: list[str | None]


class RadiusDraws(TypedDict):
    """Spectral radius over rho of the seeds' W_hh beside a population of draws (issue 19)."""
    per_seed: list[float]
    median: float
    population_median: float
    population_draws: int
    p_reach: float
    p: float


class ConfigS(TypedDict):
    hidden: int
    seeds: list[int]
    segment_length: int
    segments: int
    lyap_length: int
    grid: int
    rho_range: list[float]


class GradientSpectra(Run):
    config: ConfigS
    per_rho: list[LagRow]
    bound_over_measured_decades_min: Num
    bound_over_measured_decades_max: Num
    relu_mean_field_edge: float
    # {"relu"|"tanh": {"<length>": {rho_lyapunov_zero, ...}, "rho_bound_rate_one": x, ...}}: mixed values
    phase_crossings: dict[str, dict[str, object]]
    phase_samples: dict[str, list[PhaseSample]]
    variance_reading: VarianceReading
    radius_draws: RadiusDraws
    verdicts: list[Verdict]


# ------------------------------------------------------------------------------- remedies

class ClipRun(TypedDict):
    lr: float
    clip_norm: float | None
    finite: bool
    first_nonfinite_step: int | None
    fraction_clipped: float
    initial_loss: Num
    final_loss: Num
    last_finite_loss: Num
    max_grad_norm: Num
    median_grad_norm: Num


class ClipSetting(TypedDict):
    lr: float
    clip_norm: float | None
    runs: int
    nonfinite: int
    fraction_nonfinite: float
    ci_low: float
    ci_high: float


class ClipComparison(TypedDict):
    lr: float
    clipped_nonfinite: int
    unclipped_nonfinite: int
    p: Num
    verdict: str


class ClippingR(TypedDict):
    rho: float
    steps: int
    tau: float
    seeds: int
    settings: list[ClipSetting]
    comparisons: list[ClipComparison]
    runs: list[ClipRun]


AddingSeed = TypedDict("AddingSeed", {"steps_to_mse_0.01": int | None, "last_mse_smooth": Num})
AddingModel = TypedDict("AddingModel", {
    "num_seeds": int, "solved_seeds": int, "trained_steps": int, "seeds": list[AddingSeed],
    "test_mse_mean": Num, "test_mse_min": Num, "test_mse_max": Num,
    "median_steps_to_mse_0.01": NotRequired[Num], "min_steps_to_mse_0.01": NotRequired[Num],
    "max_steps_to_mse_0.01": NotRequired[Num], "solved_ci_low": float, "solved_ci_high": float,
    "median_ci_low": NotRequired[Num], "median_ci_high": NotRequired[Num]})


class AddingComparison(TypedDict):
    """A log-rank test of two cells' times to solve (``p`` null where no seed solved in either)."""
    id: str
    a: str
    b: str
    seeds: list[int]
    solved: list[int]
    p: Num
    verdict: str


class Adding(TypedDict):
    T: int
    hidden: int
    batch: int
    lr: float
    clip_norm: float
    budget: int
    smoothing_window: int
    threshold: float
    baseline_mse_on_test_set: float
    headline: list[str]
    models: dict[str, AddingModel]
    comparisons: list[AddingComparison]


class Zeros(TypedDict):
    state: int
    h: NotRequired[int]
    c: NotRequired[int]


class Gain(TypedDict):
    log10_gain_state: Num
    sequences_exactly_zero: Zeros
    log10_gain_h: NotRequired[Num]
    log10_gain_c_vs_state_lag0: NotRequired[Num]


class CellGains(TypedDict):
    init: Gain
    trained: Gain


class LagProfiles(TypedDict):
    sequences: int
    models: dict[str, CellGains]


class Remedies(Run):
    verdicts: list[Verdict]
    clipping: ClippingR
    adding: Adding
    lag_profiles: LagProfiles


# ------------------------------------------------------------------------------- flossing

class Delay(TypedDict):
    solved_seeds: int
    test_mse_mean: Num
    lambda1_mean: Num


class Condition(TypedDict):
    per_delay: list[Delay]
    bridgeable_delay: int | None
    monitor_lambda1_first_mean: Num
    monitor_lambda1_last_mean: Num


Conditions = TypedDict("Conditions", {key: Condition for _, key in CONDITIONS})


class ConfigF(TypedDict):
    hidden: int
    rho: float
    length: int
    noise: float
    seeds: int
    steps: int
    lr: float
    batch: int
    num: int
    floss_steps: int
    floss_lr: float
    floss_weight: float
    floss_every: int
    threshold: float
    monitor_every: int


class Spectrum(TypedDict):
    lambda1_mean: Num
    lambda_num_mean: Num
    log10_cond_mean: Num
    floss_loss_first_mean: NotRequired[Num]
    floss_loss_last_mean: NotRequired[Num]


class Spectra(TypedDict):
    init: Spectrum
    flossed: Spectrum


class FlossingVerdict(TypedDict):
    text: str
    largest_delay_tried: int


class Cost(TypedDict):
    plain_s: float
    floss_before_s: float
    floss_before_ratio: float
    floss_before_and_during_s: float
    floss_before_and_during_ratio: float


class GradientRow(TypedDict):
    min_reduction: Num
    median_reduction: Num
    seeds_at_least_5x: int
    seeds_worse: int
    reduction: NotRequired[list[Num]]


class GradientChoice(TypedDict):
    seeds: int
    rho: float
    input_scale: float
    hidden: int
    T: int
    num: int
    steps: int
    lr: float
    sum_sq_before: list[Num]
    gradients: dict[str, GradientRow]
    best: str
    floss_default: str


class Flossing(Run):
    config: ConfigF
    delays: list[int]
    conditions: Conditions
    verdict: FlossingVerdict
    verdicts: NotRequired[list[Verdict]]
    cost: Cost
    spectra: Spectra
    gradient_choice: GradientChoice


# ------------------------------------------------------------------------------- reading

SCHEMAS = {"stock_forecast/metrics.json": StockForecast, "stock_variants/metrics.json": StockVariants,
           "gradient_stability/metrics.json": GradientStability, "gradient_spectra/metrics.json": GradientSpectra,
           "remedies/metrics.json": Remedies, "flossing/metrics.json": Flossing}


def schema_of(path: Path) -> type | None:
    """The schema of a results file, from its last two (or three) path parts; None for a file without one."""
    parts = [p.partition(".base")[0] if not p.endswith(".json") else p for p in Path(path).parts]  # a second draw's
    if len(parts) >= 3 and parts[-3] == "stock_variants" and parts[-1] == "metrics.json":  # folder: NAME.baseB
        return VariantRun
    return SCHEMAS.get("/".join(parts[-2:]))


def load(path: Path, schema: type | None = None):
    """Read JSON ``path`` and check it against ``schema`` (default :func:`schema_of`): the data, unchanged.

    A file that is not JSON, or lacks or mistypes a key, raises one ``ValueError`` naming the file and the key.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rerun that experiment") from None
    schema = schema_of(path) if schema is None else schema
    if schema is not None:
        _check(data, schema, (), path)
    return data


_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number", bool: "a boolean",
          type(None): "null"}


def _name(tp) -> str:
    if is_typeddict(tp):
        return "an object"
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_name(a) for a in get_args(tp))
    return _NAMES.get(get_origin(tp) or tp, str(tp))


def _fits(value, tp) -> bool:
    """Whether ``value`` has the outer JSON type of ``tp`` (its contents are checked by :func:`_check`)."""
    if tp is object:
        return True
    if get_origin(tp) in (Union, types.UnionType):
        return any(_fits(value, a) for a in get_args(tp))
    if is_typeddict(tp):
        return isinstance(value, dict)
    tp = get_origin(tp) or tp
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check(value, tp, path: tuple, file: Path) -> None:
    where = ".".join(map(str, path))
    if not _fits(value, tp):
        raise ValueError(f"{file}: '{where}' is {_name(type(value))}, expected {_name(tp)}; rerun that experiment")
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if _fits(value, a))
    if is_typeddict(tp):
        for key, sub in get_type_hints(tp).items():
            if key in value:
                _check(value[key], sub, (*path, key), file)
            elif key in tp.__required_keys__:
                raise ValueError(f"{file}: missing '{'.'.join(map(str, (*path, key)))}'; rerun that experiment")
    elif get_origin(tp) is list:
        for i, item in enumerate(value):
            _check(item, get_args(tp)[0], (*path, i), file)
    elif get_origin(tp) is dict:
        for key, item in value.items():
            _check(item, get_args(tp)[1], (*path, key), file)
