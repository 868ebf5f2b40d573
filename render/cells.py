"""How a number is written in a figure's cell (and in any text that must show the same number).

Kept apart from ``render.figures`` so that text can use it without importing matplotlib.
"""

from __future__ import annotations

import math

import numpy as np


def format_value(value: object) -> str:
    """Format one cell value: integers as integers, anything else with at most 4 significant digits
    (the handout's text rounds to 4 too, so a figure and its caption show the same number).

    Integral floats print as integers too (a ReLU output of ``2.0`` is "2"); ``-0.0`` is "0".
    Tiny and huge values switch to exponent notation as Python's ``'.4g'`` does.

    >>> [format_value(v) for v in (3, 2.0, -0.0, 0.0123456, -1.5, 2.0417e-05, 0.5)]
    ['3', '2', '0', '0.01235', '-1.5', '2.042e-05', '0.5']
    """
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)  # type: ignore[arg-type]
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if abs(v) < 1e6 and v == int(v):
        return str(int(v))
    return f"{v:.4g}"
