"""Small datasets for trying networks: XOR, scikit-learn's digits, two spirals."""

from __future__ import annotations

import numpy as np


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points of the course notes and their targets x1 xor x2 (float)."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return X, np.array([0.0, 1.0, 1.0, 0.0])


def digits(
    test_size: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: (X_train, X_test, y_train, y_test).

    Pixels are scaled to [0, 1]; labels are int64; the split is stratified and seeded.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float64)
    return tuple(
        train_test_split(X, y.astype(np.int64), test_size=test_size, random_state=seed, stratify=y)
    )


def two_spirals(
    n_per_class: int = 200, turns: float = 1.75, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane (Lang & Witbrock 1988): (X, y), y in {0, 1}.

    Each arm winds ``turns`` times around the origin; points lie in about [-1, 1]^2 and get
    Gaussian ``noise``. Classes alternate, so consecutive rows differ in label.
    """
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class))  # uniform density along the arm
    angle = 2 * np.pi * turns * t
    arm = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    X = np.empty((2 * n_per_class, 2))
    X[0::2], X[1::2] = arm, -arm
    X += rng.normal(0.0, noise, X.shape)
    y = np.tile(np.array([0, 1], dtype=np.int64), n_per_class)
    return X, y
