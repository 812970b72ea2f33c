"""`outreach report --by`: the statistics, then each dimension against a hand count.

Every expected interval below is worked out in the test's docstring or comments from the
formula (z = 1.959964, the 97.5% normal quantile), never taken from the code under test.
The Wilson interval of k/n is (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n); at
k = 0 it is [0, z²/(n + z²)], at k = n [n/(n + z²), 1].
"""

from __future__ import annotations

import pytest

from orchestrator.reporting.stats import (
    bootstrap_mean_difference,
    newcombe,
    sample_size_per_arm,
    wilson,
)

Z2 = 1.959964**2  # 3.841459


# --- the statistics ------------------------------------------------------------------------


def test_wilson_interval_at_the_edges_and_inside() -> None:
    """0/10: [0, z²/(10 + z²)] = [0, 3.841459/13.841459] = [0, 0.277533].
    10/10: [10/13.841459, 1] = [0.722467, 1].
    8/10: p = 0.8, centre (0.8 + 0.192073) / 1.384146 = 0.716740, half-width
    1.959964·sqrt(0.016 + 0.009604) / 1.384146 = 0.226578: [0.490162, 0.943318]."""
    empty = wilson(0, 10)
    assert empty is not None and empty.to_json() == {
        "numerator": 0,
        "denominator": 10,
        "value": 0.0,
        "ci": [0.0, pytest.approx(3.841459 / 13.841459, abs=1e-6)],
    }
    full = wilson(10, 10)
    assert full is not None
    assert (full.low, full.high) == pytest.approx((10 / 13.841459, 1.0), abs=1e-6)
    inside = wilson(8, 10)
    assert inside is not None
    assert (inside.low, inside.high) == pytest.approx((0.490162, 0.943318), abs=1e-5)
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(11, 10)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((56, 70, 48, 80), (0.2, 0.0524, 0.3339)),  # (a)
        ((9, 10, 3, 10), (0.6, 0.1705, 0.8090)),  # (b)
        ((5, 56, 0, 29), (5 / 56, -0.0381, 0.1926)),  # (d): a 0/n
        ((0, 10, 0, 20), (0.0, -0.1611, 0.2775)),  # (e): both 0/n
        ((10, 10, 0, 20), (1.0, 0.6791, 1.0)),  # (g): n/n against 0/n
        ((10, 10, 0, 10), (1.0, 0.6075, 1.0)),  # (h)
    ],
)
def test_newcombe_matches_the_published_table(
    counts: tuple[int, int, int, int], expected: tuple[float, float, float]
) -> None:
    """Newcombe R.G., "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17 (1998) 873-890,
    Table II, method 10 (score, no continuity correction), to 4 places; the same figures
    come out of statsmodels 0.15.0's ``confint_proportions_2indep(..., method="newcomb",
    compare="diff")``. Example (a) is 56/70 - 48/80: difference 0.8 - 0.6 = 0.2000 (not
    0.1833), interval 0.0524 to 0.3339.

    By hand for (e), 0/10 - 0/20: the Wilson intervals are [0, 0.277533] and
    [0, 3.841459/23.841459] = [0, 0.161125], so low = 0 - sqrt(0 + 0.161125²) = -0.1611
    and high = 0 + sqrt(0.277533² + 0) = 0.2775."""
    found = newcombe(*counts)
    assert found is not None
    difference, low, high = expected
    assert found.difference == pytest.approx(difference, abs=1e-9)
    assert (found.low, found.high) == pytest.approx((low, high), abs=5e-5)
    assert found.significant is (low > 0 or high < 0)


def test_newcombe_needs_both_denominators() -> None:
    assert newcombe(1, 2, 0, 0) is None and newcombe(0, 0, 1, 2) is None
    found = newcombe(0, 10, 0, 20)
    assert found is not None and found.to_json() == {
        "difference": 0.0,
        "ci": [pytest.approx(-0.161125, abs=1e-6), pytest.approx(0.277533, abs=1e-6)],
        "significant": False,
        "method": "newcombe",
    }


def test_sample_size_per_arm_by_the_formula() -> None:
    """p1 = 0.5, p2 = 0.4, alpha 0.05 two-sided, power 0.8: z = 1.959964, z(0.8) =
    0.841621, p̄ = 0.45; 1.959964·sqrt(2·0.45·0.55) = 1.959964·0.703562 = 1.378956 and
    0.841621·sqrt(0.25 + 0.24) = 0.589135; (1.968091)² / 0.1² = 387.34, so 388 an arm.
    p1 = 0.2, p2 = 0.1: p̄ = 0.15, 1.959964·sqrt(0.255) = 0.989735, 0.841621·sqrt(0.16 +
    0.09) = 0.420811; (1.410546)² / 0.01 = 198.96, so 199."""
    assert sample_size_per_arm(0.5, 0.4) == 388
    assert sample_size_per_arm(0.4, 0.5) == 388  # the sign does not matter
    assert sample_size_per_arm(0.2, 0.1) == 199
    assert sample_size_per_arm(0.3, 0.3) is None
    assert sample_size_per_arm(0.0, 0.0) is None


def test_bootstrap_of_a_mean_difference_is_deterministic() -> None:
    """a: 50 accounts paid 10 and 50 paid nothing (mean 5, standard deviation 5); b: 100
    accounts paid nothing. The difference is 5, its standard error 5/sqrt(100) = 0.5, so
    a normal interval is 5 ± 1.96·0.5 = [4.02, 5.98]; the percentile bootstrap's is
    within a Monte Carlo error of it."""
    a, b = [10.0] * 50 + [0.0] * 50, [0.0] * 100
    found = bootstrap_mean_difference(a, b)
    assert found is not None and found.method == "bootstrap-percentile"
    assert found.difference == 5.0
    assert (found.low, found.high) == pytest.approx((4.02, 5.98), abs=0.15)
    assert found.significant
    assert bootstrap_mean_difference(a, b) == found  # a fixed seed: the same interval
    assert bootstrap_mean_difference(list(reversed(a)), b) is not None

    close = bootstrap_mean_difference([10.0, 0.0, 0.0, 0.0], [0.0, 10.0, 0.0, 0.0, 0.0])
    assert close is not None and close.low < 0 < close.high and not close.significant
    same = bootstrap_mean_difference([0.0, 0.0], [0.0, 0.0, 0.0])
    assert same is not None and (same.low, same.high) == (0.0, 0.0) and not same.significant
    assert bootstrap_mean_difference([1.0], [0.0, 2.0]) is None
