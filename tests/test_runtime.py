"""The runtime's stable elementwise functions against exact values (mpmath, 50 digits)."""

import mpmath
import numpy as np
import pytest

from symgrad import runtime as rt

mpmath.mp.dps = 50
POINTS = [-1000.0, -745.0, -700.0, -100.0, -88.0, -40.0, -17.0, -1.5, -1e-30, 0.0]
POINTS += [1e-30, 0.3, 17.0, 36.0, 40.0, 88.0, 100.0, 700.0, 1000.0]
POINTS += list(np.random.default_rng(0).standard_normal(40) * 10)

EXACT = {
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
}


@pytest.mark.parametrize("name", sorted(EXACT))
@pytest.mark.parametrize("dtype, ulps", [("float64", 2), ("float32", 2)])
def test_stable_functions_are_exact_to_a_few_ulps_in_both_tails(name, dtype, ulps):
    x = np.array(POINTS, dtype)
    got = getattr(rt, name)(x)
    assert got.dtype == x.dtype
    exact = np.array([float(EXACT[name](mpmath.mpf(float(v)))) for v in x]).astype(dtype)
    info = np.finfo(dtype)
    # ulps of the exact value; values below the normal range are compared absolutely
    scale = np.maximum(np.abs(exact.astype(np.float64)), info.tiny) * info.eps
    assert (np.abs(got.astype(np.float64) - exact) <= ulps * scale).all(), (x, got, exact)


def test_stable_functions_at_infinities_nan_and_other_inputs():
    x = np.array([np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(rt.sigmoid(x), [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(rt.softplus(x), [np.inf, 0.0, np.nan])
    # 0-d arrays, NumPy scalars and integers take exp's result dtype, as the ops infer
    assert rt.sigmoid(np.float64(3.0)) == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-15)
    assert rt.softplus(np.array(-3.0)) == pytest.approx(np.log1p(np.exp(-3.0)), rel=1e-15)
    for dtype in ("int64", "int8", "uint8", "bool", "float16"):
        x = np.array([-3, 0, 2] if dtype[0] != "u" else [3, 0, 200], dtype)
        assert rt.sigmoid(x).dtype == rt.softplus(x).dtype == np.exp(x[:0]).dtype
        wide = x.astype(float)
        np.testing.assert_allclose(rt.sigmoid(x), 1 / (1 + np.exp(-wide)), rtol=1e-3)
        np.testing.assert_allclose(rt.softplus(x), np.logaddexp(0, wide), rtol=1e-3)


def test_python_numbers():
    assert rt.sigmoid(2) == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-15)
    assert rt.softplus(2.0) == pytest.approx(np.log1p(np.exp(2.0)), rel=1e-15)
