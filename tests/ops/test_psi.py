"""Population stability index against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from bot.ops.psi import EPSILON, psi, psi_of_shares, shares


def test_bins_are_ten_equal_widths_with_clamping() -> None:
    got = shares([0.0, 0.05, 0.1, 0.55, 0.99, 1.0, 1.7, -0.5])
    # [0,0.1): 0.0, 0.05, -0.5 → 3; [0.1,0.2): 0.1; [0.5,0.6): 0.55; [0.9,1.0]: 0.99, 1.0, 1.7
    assert got == [3 / 8, 1 / 8, 0, 0, 0, 1 / 8, 0, 0, 0, 3 / 8]
    assert shares([]) == [0.0] * 10


def test_psi_of_a_shifted_two_bin_distribution() -> None:
    # baseline: half the scores in [0, 0.1), half in [0.9, 1]; recent: a quarter and three quarters
    baseline = [0.05] * 50 + [0.95] * 50
    recent = [0.05] * 25 + [0.95] * 75
    # (0.25 - 0.5)·ln(0.25/0.5) + (0.75 - 0.5)·ln(0.75/0.5) = 0.173287 + 0.101366 = 0.274653;
    # the eight empty bins are EPSILON on both sides and add nothing
    assert psi(baseline, recent) == pytest.approx(0.274653, abs=1e-6)
    assert psi(baseline, recent) > 0.25  # alerts at the default threshold


def test_identical_distributions_have_zero_psi_and_it_is_symmetric_in_form() -> None:
    values = [i / 100 for i in range(100)]
    assert psi(values, values) == pytest.approx(0.0)
    assert psi_of_shares([0.5, 0.5], [0.4, 0.6]) == pytest.approx(
        (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.6 - 0.5) * math.log(0.6 / 0.5)
    )  # 0.010 + 0.018 = 0.0405
    assert psi_of_shares([0.5, 0.5], [0.4, 0.6]) == pytest.approx(0.040546, abs=1e-6)


def test_an_empty_bin_is_floored_not_infinite() -> None:
    # everything moved from the first bin to the second: 2 · (1 − 1e-4) · ln(1 / 1e-4) = 18.41884
    value = psi([0.05] * 10, [0.15] * 10)
    assert value == pytest.approx(2 * (1 - EPSILON) * math.log(1 / EPSILON))
    assert value == pytest.approx(18.41884, abs=1e-4)


def test_different_bins_are_refused() -> None:
    with pytest.raises(ValueError):
        psi_of_shares([1.0], [0.5, 0.5])
