"""The errors symgrad raises. Every one is a `SymgradError`.

Messages name the node (id, op, user label), the shapes involved and the file:line of the
user code that created the node or made the call, so a failure points at the user's code.
"""

from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class SymgradError(Exception):
    """Base class of every error symgrad raises on bad input."""


class ShapeError(SymgradError, ValueError):
    """Shapes or dtypes of an op's arguments do not fit together."""


class GraphError(SymgradError, ValueError):
    """The graph is malformed: unknown op, cycle, missing argument, wrong arity."""


class DifferentiationError(SymgradError):
    """A derivative was requested through something that has none."""


class InputError(SymgradError, ValueError):
    """A compiled function or the evaluator was called with the wrong arguments."""


class RewriteError(SymgradError):
    """A graph rewrite broke its contract (a bug in the rewrite, never a user error)."""


class GradientCheckError(SymgradError, AssertionError):
    """`check_grads` found symbolic and numeric derivatives that disagree."""


_INSIDE: dict[str, bool] = {}  # code filename -> is it a module of the symgrad package


def _inside(filename: str) -> bool:
    hit = _INSIDE.get(filename)
    if hit is None:
        # abspath is slow and this runs for every node built: cache it per file
        hit = _INSIDE[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)
    return hit


def user_site() -> str:
    """file:line of the innermost caller outside the symgrad package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _inside(filename) and not _dataclass_method(frame.f_code):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _dataclass_method(code) -> bool:
    # a dataclass's __init__ is compiled from a string: the site is the code that called it
    if code.co_filename != "<string>":
        return False
    qualname = getattr(code, "co_qualname", None)  # Python 3.11+
    return code.co_name == "__init__" if qualname is None else qualname.startswith("__create_fn__")


def format_shape(shape) -> str:
    dims = [dim_text(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(shape) == 1 else "") + ")"


def dim_text(d) -> str:
    """A dim for a message: a name as it is, unless a newline or other unprintable text would
    make lines of its own (then quoted)."""
    return d if isinstance(d, str) and d.isprintable() else show(d)


def show(value, limit: int = 200) -> str:
    """``repr(value)`` for an error message: cut to ``limit`` characters, and never failing
    (the repr of an int of more than 4300 digits raises ValueError)."""
    try:
        text = repr(value)
    except Exception:  # a huge int, or an object whose repr is broken
        text = f"<{type(value).__name__}>"
        if isinstance(value, int):
            text = f"<int of {int(value.bit_length() * 0.30103) + 1} digits>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
