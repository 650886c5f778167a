"""Statistics of stored episodes: IQM, bootstrap and Wilson intervals, summaries, tuning tables, profiles."""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import numpy as np
import pytest

from minmax_envs.evaluation.stats import (
    bootstrap_ci,
    config_table,
    iqm,
    performance_profiles,
    summarize,
    time_ratios,
    wilson,
)
from tests.evaluation.records import make_record


def record(task="t", agent="a", phase="eval", seed=0, value=1.0, success=False, diverged=False, ttt=None,
           lr=(0.1, 0.1), higher_is_better=False, wall=0.5, config_index=0):
    """An episode record of suite ``s`` version 1 on the metric ``m`` (tests.evaluation.records)."""
    return make_record(task, "DiracGAN-v0", agent, seed, phase=phase, value=value, success=success, diverged=diverged,
                       ttt=ttt, lr=lr, metric="m", higher_is_better=higher_is_better, config_index=config_index,
                       suite="s", suite_version=1, wall=wall, key=f"{task}/{agent}/{phase}/{lr}/{seed}")


def seeds(values, **kw):
    return [record(seed=i, value=v, **kw) for i, v in enumerate(values)]


# --- IQM / bootstrap -----------------------------------------------------------------------------------------------

def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert iqm([100, 0, 3, 100, 1, 0, 2, 100]) == pytest.approx((1 + 2 + 3 + 100) / 4)
    assert iqm([1, 2, 3, 10]) == pytest.approx(2.5)
    assert iqm([1, 2, 3, math.inf]) == pytest.approx(2.5)  # an outlier, even infinite, is trimmed
    assert iqm([1, math.inf, math.inf, math.inf]) == math.inf
    assert math.isnan(iqm([]))


def test_bootstrap_ci_contains_the_statistic_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 2000):
        x = rng.normal(3.0, 1.0, n)
        for stat in (np.median, iqm):
            lo, hi = bootstrap_ci(x, stat)
            assert lo <= float(stat(x)) <= hi
            assert lo < hi
        lo, hi = bootstrap_ci(x, np.median)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 4  # ~ 1/sqrt(n): 10x narrower for 100x the data


def test_bootstrap_ci_is_reproducible_and_depends_on_the_seed():
    x = np.random.default_rng(2).normal(size=30)
    assert bootstrap_ci(x, np.median) == bootstrap_ci(x, np.median)
    assert bootstrap_ci(x, np.median, seed=1) != bootstrap_ci(x, np.median, seed=2)


def test_bootstrap_ci_wider_at_higher_confidence():
    x = np.random.default_rng(3).normal(size=40)
    lo90, hi90 = bootstrap_ci(x, iqm, confidence=0.90)
    lo99, hi99 = bootstrap_ci(x, iqm, confidence=0.99)
    assert lo99 <= lo90 and hi90 <= hi99


def test_bootstrap_ci_degenerate_samples():
    assert bootstrap_ci([4.0], np.median) == (4.0, 4.0)
    assert bootstrap_ci([2.5] * 7, iqm) == (2.5, 2.5)
    assert bootstrap_ci([math.inf] * 3, np.median) == (math.inf, math.inf)
    lo, hi = bootstrap_ci([], np.median)
    assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_ci_with_infinite_values_has_no_nan_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = bootstrap_ci([1.0, 2.0, 3.0, math.inf, math.inf], np.median)
        assert (lo, hi) == (1.0, math.inf)
        lo, hi = bootstrap_ci([1.0, 2.0, math.inf, math.inf, math.inf], iqm)
        assert math.isfinite(lo) and hi == math.inf
        lo, hi = bootstrap_ci([-math.inf, -math.inf, -math.inf, 0.5], np.median)  # higher-is-better worst
        assert lo == -math.inf and hi == 0.5  # 5% of resamples draw 0.5 three or four times
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, math.nan], np.median)


# --- Wilson --------------------------------------------------------------------------------------------------------

def test_wilson_known_values():
    lo, hi = wilson(0, 64)
    assert lo == 0.0
    z = NormalDist().inv_cdf(0.975)  # 1.95996...: the 95% normal quantile
    assert hi == pytest.approx(z**2 / (64 + z**2))  # = 0.0566: the k = 0 closed form
    assert hi == pytest.approx(0.0566, abs=5e-4)
    lo, hi = wilson(21, 64)
    assert (lo, hi) == (pytest.approx(0.2257, abs=5e-4), pytest.approx(0.4500, abs=5e-4))
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=5e-4), pytest.approx(0.7634, abs=5e-4))


def test_wilson_is_symmetric_and_inside_unit_interval():
    for k in range(0, 11):
        lo, hi = wilson(k, 10)
        lo2, hi2 = wilson(10 - k, 10)
        assert 0.0 <= lo <= k / 10 <= hi <= 1.0
        assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)


def test_wilson_without_trials_is_nan():
    assert all(math.isnan(v) for v in wilson(0, 0))
    with pytest.raises(ValueError):
        wilson(3, 2)


# --- summarize -----------------------------------------------------------------------------------------------------

def test_summarize_uses_the_eval_phase_only():
    recs = seeds([1.0, 2.0, 3.0], lr=(0.01, 0.02)) + [
        record(phase="tune", seed=10_000 + i, value=100.0, lr=(1.0, 1.0), success=True) for i in range(5)]
    (row,) = summarize(recs)
    assert row.n == 3 and (row.lr_d, row.lr_g) == (0.01, 0.02)
    assert row.median == 2.0 and row.successes == 0 and row.success_rate == 0.0


def test_summarize_statistics_by_hand():
    recs = seeds([4.0, 1.0, 3.0, 2.0, 10.0, 0.0, 7.0, 5.0])
    for r, s, t in zip(recs, [1, 1, 1, 0, 0, 0, 0, 0], [30, 60, 90, None, None, None, None, None]):
        r["success"], r["time_to_target"] = bool(s), t
    recs[0]["wall_time_s"] = 1.5
    (row,) = summarize(recs)
    assert row.median == pytest.approx(3.5)
    assert row.iqm == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert row.median_lo <= row.median <= row.median_hi and row.iqm_lo <= row.iqm <= row.iqm_hi
    assert (row.successes, row.success_rate) == (3, 3 / 8)
    assert (row.success_lo, row.success_hi) == wilson(3, 8)
    assert row.time_to_target == math.inf and row.reached == 3  # fewer than half reach
    assert row.wall_time_s == pytest.approx((1.5 + 7 * 0.5) / 8)
    assert (row.metric, row.higher_is_better, row.diverged, row.divergence_rate) == ("m", False, 0, 0.0)


def test_time_to_target_is_the_median_over_seeds_with_never_as_inf():
    recs = seeds([0.0] * 3)
    for r, t in zip(recs, [100, 200, None]):
        r["time_to_target"] = t
    assert summarize(recs)[0].time_to_target == 200.0


@pytest.mark.parametrize("higher_is_better", [False, True])
def test_diverged_or_null_seeds_count_as_the_worst_value(higher_is_better):
    recs = seeds([1.0, 2.0, 3.0, 0.5, None], higher_is_better=higher_is_better)
    recs[3]["diverged"] = True  # its stored value would be the best one: it must not count as such
    (row,) = summarize(recs)
    worst = -math.inf if higher_is_better else math.inf
    expected = sorted([1.0, 2.0, 3.0, worst, worst])[2]
    assert row.median == expected
    assert (row.diverged, row.divergence_rate) == (1, 0.2)
    all_diverged = summarize(seeds([1.0, 2.0], diverged=True, higher_is_better=higher_is_better))[0]
    assert (all_diverged.median, all_diverged.median_lo, all_diverged.median_hi) == (worst, worst, worst)
    assert all_diverged.iqm == worst


def test_summarize_orders_tasks_by_appearance_then_best_first():
    recs = (seeds([5.0, 5.0], task="second", agent="slow") + seeds([1.0, 1.0], task="second", agent="fast")
            + seeds([9.0, 9.0], task="first", agent="succeeds", success=True)
            + seeds([0.1, 0.1], task="first", agent="fails"))
    order = [(r.task, r.agent) for r in summarize(recs)]
    assert order == [("second", "fast"), ("second", "slow"), ("first", "succeeds"), ("first", "fails")]
    hib = seeds([1.0], agent="low", higher_is_better=True) + seeds([2.0], agent="high", higher_is_better=True)
    assert [r.agent for r in summarize(hib)] == ["high", "low"]


def test_summarize_keeps_configurations_apart():
    recs = seeds([1.0, 1.0], lr=(0.1, 0.1)) + [record(seed=i, value=9.0, lr=(0.5, 0.5)) for i in range(3)]
    rows = summarize(recs)
    assert sorted((r.lr_d, r.n, r.median) for r in rows) == [(0.1, 2, 1.0), (0.5, 3, 9.0)]


# --- config table --------------------------------------------------------------------------------------------------

def test_config_table_marks_the_selected_config():
    tune = []
    for i, (lr, succ) in enumerate([((0.01, 0.01), [0, 0, 0, 0]), ((0.1, 0.1), [1, 1, 0, 1]), ((1.0, 1.0), [0] * 4)]):
        tune += [record(phase="tune", seed=10_000 + s, value=float(s), success=bool(ok), lr=lr, config_index=i,
                        diverged=(lr[0] == 1.0 and s < 2)) for s, ok in enumerate(succ)]
    recs = tune + seeds([1.0, 2.0], lr=(0.1, 0.1))
    rows = config_table(recs)
    assert [(r.config_index, r.selected) for r in rows] == [(0, False), (1, True), (2, False)]
    mid = rows[1]
    assert (mid.n, mid.successes, mid.success_rate) == (4, 3, 0.75)
    assert (mid.success_lo, mid.success_hi) == wilson(3, 4)
    assert mid.median == pytest.approx(1.5)
    assert rows[2].divergence_rate == 0.5 and rows[2].median == math.inf  # 2 of 4 diverged = +inf
    assert all(not r.selected for r in config_table(tune))  # no eval records: nothing selected


# --- performance profiles ------------------------------------------------------------------------------------------

def _timed(task, agent, t, n=3):
    return [record(task=task, agent=agent, seed=i, value=0.0, ttt=t) for i in range(n)]


def test_performance_profiles_two_tasks_by_hand():
    recs = (_timed("A", "x", 100) + _timed("A", "y", 200)  # A: x fastest, y takes 2x
            + _timed("B", "x", None) + _timed("B", "y", 50)  # B: only y reaches the target
            + _timed("C", "x", None) + _timed("C", "y", None))  # C: nobody: left out
    rows = summarize(recs)
    ratios = time_ratios(rows)
    assert set(ratios) == {("s", 1, "A"), ("s", 1, "B")}
    assert ratios[("s", 1, "A")] == {"x": 1.0, "y": 2.0}
    assert ratios[("s", 1, "B")] == {"x": math.inf, "y": 1.0}
    rho = performance_profiles(rows, [1.0, 1.5, 2.0, 10.0])
    np.testing.assert_allclose(rho["x"], [0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(rho["y"], [0.5, 0.5, 1.0, 1.0])


def test_performance_profiles_missing_agent_and_nothing_solved():
    rows = summarize(_timed("A", "x", 100) + _timed("A", "y", 100) + _timed("B", "x", 30))
    rho = performance_profiles(rows, [1.0])
    assert rho["x"][0] == 1.0 and rho["y"][0] == 0.5  # y has no row on B: it does not solve B
    none = performance_profiles(summarize(_timed("A", "x", None)), np.array([1.0, 2.0]))
    assert np.isnan(none["x"]).all() and none["x"].shape == (2,)
