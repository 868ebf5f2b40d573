"""The general proofs' results kept on disk, so that a build does not prove them again each time.

``prove_general(cache=True)`` loads the results of an earlier run when one was made by the same
``symbolic/general.py``, ``symbolic/lemmas.py`` and this module, and the same Python, SymPy,
SymEngine and NumPy; otherwise it proves (a real proof, every time the source or a library
changes) and stores the results. The folder is the compiled programs' (``symbolic.numeric.cache.folder``). A file that is
missing, partial, stale or unreadable is ignored and the rules are proven again, never trusted.

SymPy's own pickling rebuilds every expression through its evaluating constructor, which takes
longer than the proofs and does not give back what was stored (an unevaluated ``Eq(0, 0)``
comes back as ``true``). So compound expressions are stored as their class and arguments and
rebuilt without evaluation (``_rebuild``), and a result is only stored after it was read back and
found equal, node for node, to what was proven.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import platform
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.function import Application
from sympy.core.operations import AssocOp, LatticeOp
from sympy.core.relational import Relational

from symbolic.files import write_atomic
from symbolic.numeric.cache import folder

# Modules whose source the results depend on: general.py holds the rules and their lemmas, and
# this one says how a stored file is read back.
_SOURCES = ("general.py", "lemmas.py", "general_cache.py")


@lru_cache(maxsize=1)
def key() -> str:
    """The file name of the stored results: a digest of the sources and the library versions.

    >>> key().startswith("general-") and key().endswith(".pickle")
    True
    """
    import numpy
    import symengine

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for name in _SOURCES:
        path = root / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.exists() else b"(none)")
    for part in (platform.python_version(), sp.__version__, symengine.__version__, numpy.__version__, str(pickle.HIGHEST_PROTOCOL)):
        h.update(part.encode())
    return f"general-{h.hexdigest()[:32]}.pickle"


def _rebuild(cls: type, args: tuple) -> sp.Basic:
    """One compound expression from its class and (rebuilt) arguments, as it was: not evaluated again.

    Each case does what the class's own constructor does once its arguments are canonical, as
    they are here (they were made by that constructor); ``same`` checks the round trip anyway.

    >>> x, i = sp.Symbol("x"), sp.Symbol("i", integer=True); e = sp.Eq(x - x, 0, evaluate=False)
    >>> _rebuild(type(e), e.args) == e, _rebuild(sp.Add, (x + 1).args) == x + 1
    (True, True)
    >>> inner = sp.Sum(x, (i, 0, 2)); nested = _rebuild(sp.Sum, (inner, sp.Tuple(x, 0, 1)))
    >>> nested.args[0] == inner, sp.Sum(inner, (x, 0, 1)).args[0] == inner  # the constructor merges them
    (True, False)
    """
    if issubclass(cls, AssocOp) and not issubclass(cls, LatticeOp):
        return cls._from_args(args)  # Add, Mul
    if issubclass(cls, (Relational, Application, sp.Pow, sp.Derivative)):
        return cls(*args, evaluate=False)  # includes Piecewise, KroneckerDelta, exp, undefined functions
    if issubclass(cls, ExprWithLimits):
        # Sum, Product, Integral: the constructor would merge nested sums and fold Piecewise
        # summands outwards, which the proofs' steps deliberately do not have.
        obj = sp.Basic.__new__(cls, *args)
        obj.is_commutative = args[0].is_commutative
        return obj
    return cls(*args)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):  # noqa: ANN001, ANN201 - pickle's hook
        if isinstance(obj, sp.Basic) and obj.args and not isinstance(obj, (sp.Symbol, sp.IndexedBase, sp.Idx)):
            return _rebuild, (type(obj), obj.args)
        return NotImplemented


def dumps(results: object) -> bytes:
    """``results`` as bytes; compound SymPy expressions as class + arguments (see ``_rebuild``)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(results)
    return buf.getvalue()


def same(a: object, b: object) -> bool:
    """Whether two results are equal all the way down: SymPy nodes of the same class with equal
    contents, dataclasses field by field (also those compared by identity), functions identical.

    >>> x = sp.Symbol("x")
    >>> same((sp.Eq(x, x, evaluate=False), 1), (sp.Eq(x, x, evaluate=False), 1)), same(sp.Eq(0, 0, evaluate=False), sp.true)
    (True, False)
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, sp.Basic):
        return a == b and len(a.args) == len(b.args) and all(same(x, y) for x, y in zip(a.args, b.args))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(k, j) and same(a[k], b[j]) for k, j in zip(a, b))
    if callable(a):
        return a is b
    return a == b


def _load(path: Path) -> list | None:
    try:
        with path.open("rb") as handle:
            got = pickle.load(handle)  # noqa: S301 - our own file in the user's own cache folder
    except Exception:  # noqa: BLE001 - missing, partial, stale or foreign: prove again
        return None
    if not isinstance(got, list) or not all(type(r).__name__ == "GeneralResult" for r in got):
        return None
    return got


def _store(path: Path, results: list) -> None:
    try:
        data = dumps(results)
        if not same(pickle.loads(data), results):  # noqa: S301 - the bytes just made
            return  # an expression that does not come back as it was is not kept
    except Exception:  # noqa: BLE001 - an object that cannot be pickled is not kept
        return
    write_atomic(path, data)


def cached_results(prove: Callable[[], list]) -> list:
    """The stored results for this source and these libraries, else ``prove()``'s (then stored)."""
    path = folder() / key()
    got = _load(path)
    if got is None:
        got = prove()
        _store(path, got)
    return got


__all__ = ["cached_results", "dumps", "key", "same"]
