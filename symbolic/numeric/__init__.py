"""Numbers from the symbols: the network's canonical expressions compiled into batched functions.

Every atom is computed from its *definition* (``Atoms.definition``): the ReLU step from the
very condition ReLU is written with, a pooling selector from the Piecewise conditions of its
convention, the sigmoid from a stable form. Then every output: the stages, the loss in its
proven stable form, and the gradients of the (proven) backward chain. Nothing here is a
hand-written backprop.

The numbers are per sample: ``net(X, Y, W1=..., ...)`` with leading batch axes on any
argument gives every output with those axes; ``mean=True`` averages the gradients and L over
the batch instead (the loss of a batch is the mean of the per-sample losses).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import symengine as se

from symbolic.errors import CaseError
from symbolic.layers import LeakyReLU, MaxPool, ReLU, obj
from symbolic.network import Network, backward, build
from symbolic.numeric.codegen import compile_program
from symbolic.spec import NetworkSpec

Shape = tuple[int, ...]


def squeezed(shape: Shape) -> Shape:
    """A shape without its axes of length 1: the short form a case may use.

    >>> squeezed((1, 1, 3, 3)), squeezed((1,))
    ((3, 3), ())
    """
    return tuple(d for d in shape if d != 1)


def symbolic_outputs(net: Network) -> dict[str, np.ndarray]:
    """Every quantity the tool prints, as canonical expressions of one sample (object arrays).

    Keys: each stage, the prediction, ``L``, ``mask(Z)`` (1[Z > 0] for each ReLU's input),
    ``route(A)`` (for each max-pool's input: how many windows route their gradient to each
    cell, 0/1 without overlap), and ``dL/d<stage>``, ``dL/d<param>`` from the backward chain.

    >>> out = symbolic_outputs(build(load_spec())); out["dL/dW1"].shape, out["P1"].shape, out["A2"].shape
    ((1, 1, 3, 3), (1, 2, 2), (1,))
    """
    atoms = net.atoms
    out: dict[str, np.ndarray] = {}
    for name, value in net.stages.items():
        out[name] = canon_array(net, value[0])
    pred_name = net.loss.names["out"]
    out[pred_name] = np.asarray(net.prediction, dtype=object)[0]
    assert net.loss_ctx is not None
    L = np.empty((), dtype=object)
    L[()] = net.loss.numeric_loss(net.loss_ctx)
    out["L"] = L
    for layer, ctx in zip(net.layers, net.contexts):
        x = ctx.saved.get("x")
        if isinstance(layer, (ReLU, LeakyReLU)):
            out[f"mask({layer.names['in']})"] = obj(x.shape[1:], lambda *i, x=x: atoms.lookup("step", (x[(0, *i)],)))
        if isinstance(layer, MaxPool):
            ones = obj((1, *layer.out_shape), lambda *_: se.Integer(1))
            out[f"route({layer.names['in']})"] = layer.backward(ctx, ones)[0][0]
    for key, value in backward(net).items():
        arr = np.asarray(value, dtype=object)
        out[key] = arr if key[4:] in net.params else arr[0]
    return out


def pull_common_factors(expr: se.Expr, memo: dict | None = None) -> se.Expr:
    """Every sum whose terms share a factor, rewritten as that factor times the sum (exact).

    The backward chain multiplies every term of dL/dW1 by the same A2 − Y; evaluating
    (A2 − Y) · Σ x w2 ... instead of Σ (A2 − Y) x w2 ... rounds once instead of per term, so a
    sum that is exactly 0 evaluates to 0, not to 2e-16.

    >>> a, b, c = se.symbols("a b c"); pull_common_factors(a * (b - c) + a * (b + c)) == a * ((b - c) + (b + c))
    True
    """
    memo = {} if memo is None else memo
    hit = memo.get(expr)
    if hit is not None:
        return hit
    if not expr.args:
        out = expr
    elif isinstance(expr, se.Add):
        terms = [pull_common_factors(t, memo) for t in expr.args]
        factors = [list(t.args) if isinstance(t, se.Mul) else [t] for t in terms]
        common = [f for f in factors[0] if not isinstance(f, se.Number) and all(f in fs for fs in factors[1:])]
        if common:
            rest = []
            for fs in factors:
                fs = list(fs)
                for f in common:
                    fs.remove(f)
                rest.append(se.Mul(*fs))
            out = se.Mul(*common, se.Add(*rest))
        else:
            out = se.Add(*terms)
    elif isinstance(expr, se.Mul):
        out = se.Mul(*[pull_common_factors(a, memo) for a in expr.args])
    elif isinstance(expr, se.Pow):
        out = se.Pow(*[pull_common_factors(a, memo) for a in expr.args])
    else:
        out = expr
    memo[expr] = out
    return out


def canon_array(net: Network, arr: np.ndarray) -> np.ndarray:
    """An array of raw expressions in canonical form."""
    arr = np.asarray(arr, dtype=object)
    return obj(arr.shape, lambda *i: net.atoms.canon(arr[i]))


@dataclass
class Compiled:
    """What a backend made of a network: the program, its output keys and shapes, and the cost."""

    backend: str
    keys: list[str]
    shapes: dict[str, Shape]
    n_inputs: int
    program: Callable[[np.ndarray], np.ndarray]
    seconds: float


OUTPUTS = ("all", "gradients")


def atom_levels(net: Network) -> list[list[tuple[se.Symbol, se.Expr]]]:
    """Every atom from its definition, in levels by dependency (stages spelled out where used).

    >>> [len(level) for level in atom_levels(build(load_spec()))]
    [16, 16, 2]
    """
    atoms = net.atoms
    level: dict = {}
    steps: list[list] = []
    for sym in atoms.by_symbol:  # creation order is forward order: dependencies come first
        definition = atoms.definition(sym)
        deps = [level[d] for d in definition.free_symbols if d in level]
        level[sym] = 1 + max(deps, default=-1)
        while len(steps) <= level[sym]:
            steps.append([])
        steps[level[sym]].append((sym, definition))
    return steps


def staged_program(net: Network) -> tuple[list[list[tuple[se.Symbol, se.Expr]]], dict]:
    """The network as levels of assignments: every stage entry and every atom, each once.

    Each stage's canonical entries get a variable, so a later atom or stage uses the variable
    instead of spelling the sum out again (a max-pool selector compares four numbers, not four
    9-term sums). Levels are by dependency: a level uses only the inputs and earlier levels.
    Returns the levels and the map from canonical stage expressions to their variables.

    >>> steps, mapping = staged_program(build(load_spec())); [len(level) for level in steps]
    [16, 16, 16, 16, 4, 1, 2]
    """
    atoms = net.atoms
    mapping: dict = {}
    defs: dict = {}
    for name, values in net.stages.items():
        if name == net.start:
            continue
        for raw in np.asarray(values, dtype=object).ravel():
            c = atoms.canon(raw)
            if not c.args or c in mapping:
                continue
            var = se.Symbol(f"_v{len(mapping)}")
            defs[var] = c.xreplace(mapping)
            mapping[c] = var
    for sym in atoms.by_symbol:
        defs[sym] = atoms.definition(sym).xreplace(mapping)
    level: dict = {}
    pending = list(defs)
    while pending:  # a handful of passes: stages and atoms alternate forward through the network
        rest = []
        for var in pending:
            deps = [d for d in defs[var].free_symbols if d in defs]
            if all(d in level for d in deps):
                level[var] = 1 + max((level[d] for d in deps), default=-1)
            else:
                rest.append(var)
        if len(rest) == len(pending):
            raise ValueError("circular definitions in the numeric program")
        pending = rest
    steps: list[list] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for var in defs:
        steps[level[var]].append((var, defs[var]))
    return steps, mapping


def compile_outputs(spec: NetworkSpec, backend: str, outputs: str = "all") -> Compiled:
    """Build the network for one sample, run its backward chain, and compile the chosen outputs.

    ``outputs="gradients"`` keeps L, the prediction and the parameter gradients (what training
    and batch evaluation need); ``"all"`` adds every stage, mask and stage gradient.
    """
    t0 = time.perf_counter()
    one = dataclasses.replace(spec, batch=1) if spec.batch != 1 else spec
    net = build(one)
    symbolic = symbolic_outputs(net)
    if outputs == "gradients":
        wanted = ["L", one.stages[-2], *(f"dL/d{p}" for p in one.param_shapes)]
        symbolic = {k: symbolic[k] for k in wanted}
    inputs = list(net.inputs.ravel()) + [s for arr in net.params.values() for s in arr.ravel()] + list(net.Y.ravel())
    keys = list(symbolic)
    shapes = {k: np.shape(v) for k, v in symbolic.items()}

    def flat(mapping: dict) -> list[se.Expr]:
        memo: dict = {}
        return [
            pull_common_factors(se.sympify(e).xreplace(mapping), memo) for k in keys for e in np.asarray(symbolic[k], dtype=object).ravel()
        ]

    program: Callable[[np.ndarray], np.ndarray] | None = None
    if backend in ("llvm", "auto"):
        from symbolic.numeric import llvm

        # Machine code is best as one function with every atom inlined; where the network is
        # too deep or too large for that (``llvm.fuse`` says), one function per level, up to
        # ``llvm.LEVEL_ATOMS`` atoms; "auto" takes numpy's staged program beyond (see there).
        steps, outputs = atom_levels(net), flat({})
        fused = llvm.fuse(steps, outputs)
        if fused is not None:
            program, backend = llvm.LLVMProgram(inputs, steps, outputs, fused), "llvm"
        elif backend == "llvm" or sum(map(len, steps)) <= llvm.LEVEL_ATOMS:
            # Level by level, every stage entry is a variable computed once (as for numpy):
            # without them each level would compute the forward pass again up to its atoms.
            steps, mapping = staged_program(net)
            program, backend = llvm.LLVMProgram(inputs, steps, flat(mapping), None), "llvm"
        else:
            backend = "numpy"
    if program is None:
        # numpy pays per operation, so every stage entry is computed once, as a variable.
        steps, mapping = staged_program(net)
        program = compile_program(inputs, steps, flat(mapping))
    return Compiled(backend, keys, shapes, len(inputs), program, time.perf_counter() - t0)


class NumericNetwork:
    """The compiled network for one spec (per sample). Call it with arrays; leading batch axes broadcast.

    ``net(X, Y, W1=..., ...)`` gives every output per sample, with the leading batch axes of
    the arguments; ``mean=True`` averages over the batch instead: the loss of the batch is the
    mean of the per-sample losses, so its gradients are the means of theirs.

    >>> net = compile_network(load_spec(), backend="numpy")
    >>> out = net(np.ones((6, 6)), 1.0, W1=np.ones((3, 3)), B1=-8.0, W2=np.ones(4), B2=0.0)
    >>> float(out["Z2"][0]), out["dL/dW1"].shape
    (4.0, (1, 1, 3, 3))
    """

    def __init__(self, spec: NetworkSpec, compiled: Compiled) -> None:
        self.spec = spec
        self.backend = compiled.backend
        self.param_shapes = dict(spec.param_shapes)
        self.x_shape: Shape = spec.input
        self.y_shape: Shape = spec.y_shape
        self.keys = compiled.keys
        self.shapes = compiled.shapes
        self.n_inputs = compiled.n_inputs
        self._program = compiled.program
        self.compile_seconds = compiled.seconds
        self._arg_names = ("X", *self.param_shapes, "Y")
        self._fulls = {"X": self.x_shape, **self.param_shapes, "Y": self.y_shape}
        self._sizes = {k: (math.prod(v), squeezed(v)) for k, v in self._fulls.items()}
        self._slices: dict[str, tuple[int, int, Shape]] = {}
        at = 0
        for key in self.keys:
            n = math.prod(self.shapes[key])
            self._slices[key] = (at, at + n, self.shapes[key])
            at += n
        self._pieces = [(key, a, b, shp) for key, (a, b, shp) in self._slices.items()]
        self._y_at = self.n_inputs - self._sizes["Y"][0]
        self._layouts: dict[tuple, bool] = {}
        one = getattr(self._program, "one", None)
        self._one: Callable[[np.ndarray], np.ndarray] = one if one is not None else (lambda row: self._program(row[None, :])[0])

    def _arg(self, name: str, value: object, full: Shape) -> tuple[np.ndarray, Shape]:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise CaseError(f"{name}: expected numbers in an array of shape {full}, got {type(value).__name__}") from None
        size, short = self._sizes[name]
        if arr.size == size and squeezed(arr.shape) == short:
            return arr.reshape(full), ()  # one value written in any layout: no batch axis
        for shape in (full, short):
            k = len(shape)
            if arr.ndim >= k and arr.shape[arr.ndim - k :] == shape:
                batch = arr.shape[: arr.ndim - k]
                return arr.reshape(batch + full), batch
        alt = f" (or {short})" if short != full else ""
        raise CaseError(f"{name}: expected shape {full}{alt} for {self.spec.label}, with optional leading batch axes; got {arr.shape}")

    def _one_sample(self, values: list) -> dict[str, np.ndarray] | None:
        """The fast path for one sample of arrays (or numbers) with exactly its sizes.

        None where it does not apply: anything unusual (a batch axis, a list, a bad number) goes
        the general way, which also words the refusals. Shapes are judged once per shape and
        remembered, since the API is called in loops with the same layouts.
        """
        row = np.empty(self.n_inputs)
        at = 0
        for name, value in zip(self._arg_names, values):
            size = self._sizes[name][0]
            if type(value) is np.ndarray:
                key = (name, value.shape, value.dtype.kind)
                ok = self._layouts.get(key)
                if ok is None:
                    ok = self._layouts[key] = (
                        value.size == size and value.dtype.kind in "fiu" and squeezed(value.shape) == self._sizes[name][1]
                    )
                if not ok:
                    return None
                row[at : at + size] = value.ravel()
            elif size == 1 and isinstance(value, (float, int, np.floating, np.integer)) and type(value) is not bool:
                row[at] = value
            else:
                return None
            at += size
        if not np.isfinite(row).all():
            return None
        if self.spec.loss == "bce" and self._y_at == self.n_inputs - 1:
            if not 0.0 <= row[-1] <= 1.0:
                return None
        elif self.spec.loss in ("bce", "softmax_ce"):
            y = row[self._y_at :]
            if y.min() < 0 or y.max() > 1 or self.spec.loss == "softmax_ce" and abs(y.sum() - 1) > 1e-9:
                return None
        flat_out = self._one(row)
        if not np.isfinite(flat_out).all():
            return None
        flat_out += 0.0  # turns -0.0 into 0.0
        return {key: flat_out[a:b].reshape(shp) for key, a, b, shp in self._pieces}

    def __call__(self, X: object, Y: object, mean: bool = False, **params: object) -> dict[str, np.ndarray]:
        if params.keys() != self.param_shapes.keys():
            missing = [p for p in self.param_shapes if p not in params]
            extra = [p for p in params if p not in self.param_shapes]
            raise CaseError(
                f"{(missing or extra)[0]}: expected the parameters {', '.join(self.param_shapes)}; got {', '.join(params) or 'none'}"
            )
        names = self._arg_names
        values = [X, *(params[p] for p in self.param_shapes), Y]
        one = self._one_sample(values)
        if one is not None:
            return one
        arrays = [self._arg(name, value, self._fulls[name]) for name, value in zip(names, values)]
        if all(not b for _, b in arrays):
            # One sample: a single row, no broadcasting (the common case of eval and the API).
            batch: Shape = ()
            rows = np.concatenate([a.ravel() for a, _ in arrays])[None, :]
        else:
            try:
                batch = np.broadcast_shapes(*[b for _, b in arrays])
            except ValueError:
                shapes = ", ".join(f"{n} {a.shape}" for n, (a, _) in zip(names, arrays))
                raise CaseError(f"batch: the leading (batch) axes do not broadcast together: {shapes}") from None
            size = math.prod(batch)
            # One row per sample, filled in place: no per-argument copies, no transposes; an
            # argument without batch axes (the parameters, mostly) is broadcast by the assignment.
            rows = np.empty((size, self.n_inputs))
            at = 0
            for name, (a, b) in zip(names, arrays):
                width = self._sizes[name][0]
                if b == batch:
                    piece = a.reshape(size, width)
                elif not b:
                    piece = a.reshape(width)
                else:
                    piece = np.broadcast_to(a, batch + a.shape[len(b) :]).reshape(size, width)
                rows[:, at : at + width] = piece
                at += width
        # One pass over the rows; which argument is to blame is looked up only when one is.
        if not _finite(rows):
            bad = next(n for n, (a, _) in zip(names, arrays) if not np.isfinite(a).all())
            raise CaseError(f"{bad}: expected finite numbers, got NaN or infinity")
        check_labels(self.spec, arrays[-1][0])
        flat = self._program(rows)
        np.add(flat, 0.0, out=flat)  # turns -0.0 into 0.0
        if rows.shape[0] and not _finite(flat):
            raise CaseError(
                "X: the forward pass overflows float64 at these values (L or a gradient is infinite or NaN); expected smaller magnitudes"
            )
        if mean and batch:
            # One reduction over the samples for every output at once.
            flat, batch = flat.mean(axis=0, keepdims=True), ()
        return {key: flat[:, a:b].reshape(batch + shp) for key, (a, b, shp) in self._slices.items()}


def _finite(a: np.ndarray) -> bool:
    """No NaN or infinity in ``a``; the sum answers in one pass, the full check only if it is not finite.

    >>> _finite(np.array([1e308, 1e308])), _finite(np.array([1.0, np.nan]))
    (True, False)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
    return bool(np.isfinite(a).all())


def check_labels(spec: NetworkSpec, y: np.ndarray) -> None:
    """Y must fit the loss: bce in [0, 1]; softmax_ce a probability vector.

    >>> check_labels(load_spec(), np.array(2.0))
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: Y: expected a label in [0, 1] for bce, got 2.0
    """
    if spec.loss in ("bce", "softmax_ce") and ((y < 0) | (y > 1)).any():
        bad = float(y[(y < 0) | (y > 1)].ravel()[0])
        raise CaseError(f"Y: expected a label in [0, 1] for {spec.loss}, got {bad!r}")
    if spec.loss == "softmax_ce":
        sums = y.sum(axis=-1)
        if (np.abs(sums - 1) > 1e-9).any():
            bad = float(sums[np.abs(sums - 1) > 1e-9].ravel()[0])
            raise CaseError(f"Y: expected a probability vector (entries summing to 1) for softmax_ce, got a sum of {bad!r}")


BACKENDS = ("auto", "llvm", "numpy")
FALLBACK = "SymEngine has no LLVM backend here"
_said: set[str] = set()


def compile_network(spec: NetworkSpec, backend: str = "auto", outputs: str = "all", quiet: bool = True) -> NumericNetwork:
    """The network for ``spec`` compiled to numbers (cached per spec in this process and on disk).

    ``backend``: "llvm" (SymEngine's LLVM backend: machine code), "numpy" (generated numpy
    code, the portable fallback) or "auto": LLVM where this SymEngine has it, as one function
    where the program inlines into one (``llvm.fuse``: the seed family up to 28×28), else
    one function per level up to ``llvm.LEVEL_ATOMS`` atoms (part3, lenet-tiny), and numpy's
    staged program for larger networks, which compiles faster there. Both are lambdified from
    the same expressions. Compiled programs are kept in the user's cache folder
    (``cache.folder()``), so a second process loads them instead of compiling; where
    compiling took over a second, the time and the cache hit are reported on stderr unless
    ``quiet``.

    >>> compile_network(load_spec(), backend="numpy").keys[:3]
    ['X', 'Z1', 'A1']
    """
    net, notices = _compiled(spec, backend, outputs)
    for text in notices:
        # A missing backend is said once per process even when quiet: the user asked for it.
        if not quiet or (text.startswith(FALLBACK) and text not in _said):
            _said.add(text)
            _notice(text)
    return net


compile_network.cache_clear = lambda: _compiled.cache_clear()  # type: ignore[attr-defined]


@lru_cache(maxsize=32)
def _compiled(spec: NetworkSpec, backend: str, outputs: str) -> tuple[NumericNetwork, tuple[str, ...]]:
    """The compiled network and the notices its compiling deserves (printed by ``compile_network``)."""
    from symbolic.numeric import cache, llvm

    notices: list[str] = []

    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs: expected one of {', '.join(OUTPUTS)}, got {outputs!r}")
    if backend in ("auto", "llvm") and not llvm.available():
        notices.append(f"{FALLBACK}; numbers come from the numpy backend (same expressions, slower)")
        backend = "numpy"
    key = cache.key(spec, backend, outputs)  # "auto" is keyed as asked: the choice is stored inside
    t0 = time.perf_counter()
    hit = cache.load(key)
    if hit is not None:
        if hit.seconds > 1:
            notices.append(
                f"compiled code for {spec.label} ({hit.backend}) from the cache in {time.perf_counter() - t0:.2f} s "
                f"(compiling took {hit.seconds:.1f} s)"
            )
        return NumericNetwork(spec, hit), tuple(notices)
    compiled = compile_outputs(spec, backend, outputs)
    kept = cache.store(key, compiled)
    if compiled.seconds > 1:
        where = f"cached in {cache.folder()}" if kept else f"not cached: cannot write {cache.folder()}"
        notices.append(f"compiled {spec.label} ({compiled.backend}) in {compiled.seconds:.1f} s; {where}")
    return NumericNetwork(spec, compiled), tuple(notices)


def _notice(text: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[dim]cnn-derive:[/dim] {text}")


def evaluate(spec: NetworkSpec, case: Mapping[str, object], mean: bool = False) -> dict[str, np.ndarray]:
    """The outputs for a case given as a mapping with X, Y and every parameter.

    >>> out = evaluate(load_spec(), {"X": np.zeros((6, 6)), "W1": np.zeros((3, 3)), "B1": 0, "W2": np.zeros(4), "B2": 0, "Y": 1})
    >>> round(float(out["L"]), 6)
    0.693147
    """
    case = dict(case)
    return compile_network(spec)(case.pop("X"), case.pop("Y"), mean=mean, **case)


from symbolic.spec import load_spec  # noqa: E402, F401 - for the doctests' namespace

__all__ = [
    "BACKENDS",
    "OUTPUTS",
    "Compiled",
    "NumericNetwork",
    "compile_outputs",
    "check_labels",
    "compile_network",
    "evaluate",
    "pull_common_factors",
    "squeezed",
    "symbolic_outputs",
]
