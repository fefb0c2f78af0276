"""The demo's claims, checked: XOR solved, digits >= 95%, HVP matches finite differences."""

import subprocess
import sys

import numpy as np
import pytest

from symgrad import demo


def test_xor_reaches_textbook_quality():
    result = demo.train_xor(quiet=True)
    assert result["loss"] < 1e-6
    np.testing.assert_allclose(result["outputs"], demo.XOR_Y, atol=3e-3)


def test_textbook_solution_is_exact():
    _, _, predict = demo.xor_network(demo.TEXTBOOK)
    np.testing.assert_array_equal(predict(demo.XOR_X), [0.0, 1.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def digits():
    return demo.train_digits(quiet=True)


def test_digits_accuracy(digits):
    assert digits["accuracy"] >= 0.95
    assert digits["history"][-1] < digits["history"][0] / 10


def test_digits_hvp_matches_finite_differences(digits):
    check = demo.hvp_check(digits)
    assert check["relative_error"] < 1e-6
    assert check["norm"] > 0


def test_cli_help_lists_demo():
    out = subprocess.run(
        [sys.executable, "-m", "symgrad", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout


def test_demo_lanczos_eigenvalues_match_eigsh(digits):
    from scipy.sparse.linalg import eigsh

    from symgrad import krylov

    top = demo.top_hessian_eigenvalues(digits, k=3)
    problem = digits["problem"]
    op = krylov.hvp_operator(problem.loss, problem.params, demo._curvature_batch(digits))
    reference = np.sort(eigsh(op, k=3, which="LA", tol=1e-12)[0])[::-1]
    np.testing.assert_allclose(top["values"], reference, rtol=1e-6)
    assert top["n"] == 64 * 128 + 128 + 128 * 10 + 10


def test_demo_runs_and_prints_its_claims(capsys):
    result = demo.run(quiet=True)
    out = capsys.readouterr().out
    assert "< 1e-6" in out and "W = [[1., 1.], [1., 1.]]" in out
    assert "held-out accuracy" in out and "relative error" in out and "HVPs" in out
    assert result["xor"]["loss"] < 1e-6 and result["digits"]["accuracy"] >= 0.95
    assert result["hvp"]["relative_error"] < 1e-6
