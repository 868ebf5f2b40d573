"""Every name cnn-derive gives: stages, parameters, their entries, upstream-gradient symbols.

One module, so that `eval`, `expand`, the API and the handout can never disagree. The
trainable layers (conv2d, dense) are numbered 1, 2, ... in order; a layer's output is named
after the trainable layer it follows:

* conv2d / dense number t: output ``Z<t>``, weights ``W<t>``, bias ``B<t>``;
* an activation after it: ``A<t>`` (a second one in a row: ``A<t>_2``);
* a pool: ``P<t>``; flatten: ``F`` (then ``F2``, ...); the loss's link (sigmoid, softmax): ``A<t>``.

Entries are lower case with 1-based indices, as in the lecture: ``x_ij``, ``z_ij``, ``w_kl``
for the first layer; ``w2_j``, ``z2_ij`` from the second on. Axes of length 1 (one channel, one
filter, one unit, one sample) are left out of an entry's index, and an array with a single
entry is one symbol written like the lecture's scalars: ``B_1``, ``Z_2``, ``A_2``.
"""

from __future__ import annotations

from collections.abc import Sequence

TRAINABLE = ("conv2d", "dense")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
POOLS = ("maxpool", "avgpool")


def stage_base(stage: str) -> str:
    """The entry base of a stage: lower case, the number kept only from 2 on.

    >>> stage_base("Z1"), stage_base("Z2"), stage_base("F"), stage_base("A1_2"), stage_base("X")
    ('z', 'z2', 'f', 'a_2', 'x')
    """
    head, number = stage.rstrip("0123456789_"), stage[len(stage.rstrip("0123456789_")) :]
    if number.startswith("1") and not number[1:2].isdigit():
        number = number[1:]
    return head.lower() + number


def scalar_name(stage: str) -> str:
    """The one symbol of a single-entry stage or parameter: ``Z2`` is ``Z_2``, ``L`` stays ``L``.

    >>> scalar_name("Z2"), scalar_name("B1"), scalar_name("Y"), scalar_name("A1_2")
    ('Z_2', 'B_1', 'Y', 'A_1,2')
    """
    head = stage.rstrip("0123456789_")
    rest = stage[len(head) :].replace("_", ",")
    return f"{head}_{rest}" if rest else head


def entry_name(base: str, idx: Sequence[int], shape: Sequence[int]) -> str:
    """The name of one entry, 1-based, axes of length 1 left out; commas once an axis reaches 10.

    >>> entry_name("x", (0, 0, 1), (1, 6, 6)), entry_name("x", (0, 0, 11), (1, 28, 28))
    ('x_12', 'x_1,12')
    >>> entry_name("w2", (0, 2), (1, 4)), entry_name("w", (1, 0, 2, 2), (2, 2, 3, 3))
    ('w2_3', 'w_2133')
    """
    kept = [i for i, n in zip(idx, shape) if n > 1] or [0]
    parts = [str(i + 1) for i in kept]
    sep = "," if max(shape, default=1) >= 10 and len(parts) > 1 else ""
    return f"{base}_{sep.join(parts)}"


def param_names(t: int) -> tuple[str, str]:
    """The weight and bias names of trainable layer ``t``.

    >>> param_names(2)
    ('W2', 'B2')
    """
    return f"W{t}", f"B{t}"


def weight_base(t: int) -> str:
    """Entry base of W<t>: ``w`` for the first layer (the lecture's w_kl), ``w2`` ... after.

    >>> weight_base(1), weight_base(3)
    ('w', 'w3')
    """
    return "w" if t == 1 else f"w{t}"


def bias_base(t: int) -> str:
    """Entry base of B<t> when it has several entries (one per filter or unit).

    >>> bias_base(1)
    'b1'
    """
    return f"b{t}"


def bar(base: str) -> str:
    """The base of the upstream-gradient symbols of a stage: ``zbar_ij`` stands for dL/dz_ij.

    >>> bar("z"), bar("Z_2")
    ('zbar', 'Zbar_2')
    """
    head, _, tail = base.partition("_")
    return f"{head}bar_{tail}" if tail else f"{head}bar"


def tex_name(name: str) -> str:
    """A stage or parameter name in LaTeX: ``Z1`` is ``Z_{1}``, ``A1_2`` is ``A_{1,2}``.

    >>> tex_name("Z1"), tex_name("F"), tex_name("A1_2")
    ('Z_{1}', 'F', 'A_{1,2}')
    """
    head = name.rstrip("0123456789_")
    rest = name[len(head) :].replace("_", ",")
    return f"{head}_{{{rest}}}" if rest else head


def split_entry(name: str) -> tuple[str, int, str]:
    """An entry name's letters, layer number (1 when it has none) and index.

    >>> split_entry("w2_3"), split_entry("x_1,12"), split_entry("B_1")
    (('w', 2, '3'), ('x', 1, '1,12'), ('B', 1, '1'))
    """
    base, _, sub = name.partition("_")
    letters = base.rstrip("0123456789")
    digits = base[len(letters) :]
    return letters, int(digits) if digits else 1, sub


def latex_entry(name: str) -> str | None:
    """An entry of layer t >= 2 in LaTeX, the layer as a superscript: ``w2_3`` is ``w^{(2)}_{3}``.

    None for names the rule does not cover (the printer's own rules apply).

    A layer 1 written with its number (``b1_1`` in a network with more than one conv) is shown
    the same way; the seed's unnumbered names (``w_11``) are not covered.

    >>> latex_entry("w2_3"), latex_entry("z3_1,2"), latex_entry("w_11"), latex_entry("b1_1")
    ('w^{(2)}_{3}', 'z^{(3)}_{1,2}', None, 'b^{(1)}_{1}')
    """
    letters, t, sub = split_entry(name)
    numbered = name.partition("_")[0] != letters
    if not numbered or not sub or not letters.islower():
        return None
    return f"{letters}^{{({t})}}_{{{sub}}}"


def text_entry(name: str) -> str | None:
    """An entry of layer t >= 2 in plain text: ``w2_3`` is ``W2_3`` (the parameter, then the index).

    >>> text_entry("w2_3"), text_entry("w_11")
    ('W2_3', None)
    """
    letters, t, sub = split_entry(name)
    if t < 2 or not sub or letters != "w":
        return None
    return f"W{t}_{sub}"


def grad_key(name: str) -> str:
    """The key of a gradient in every output: ``dL/dW1``.

    >>> grad_key("Z1")
    'dL/dZ1'
    """
    return f"dL/d{name}"


def stage_names(types: Sequence[str], loss: str) -> list[str]:
    """The name of every stage, input first, for a stack of layer types and a loss.

    The last two are the loss's link output (the prediction) and ``L``.

    >>> stage_names(["conv2d", "relu", "maxpool", "flatten", "dense"], "bce")
    ['X', 'Z1', 'A1', 'P1', 'F', 'Z2', 'A2', 'L']
    >>> stage_names(["dense", "relu", "tanh", "dense"], "mse")
    ['X', 'Z1', 'A1', 'A1_2', 'Z2', 'Z2', 'L']
    """
    out, t, seen = ["X"], 0, set()
    flat = 0
    for kind in types:
        if kind in TRAINABLE:
            t += 1
            name = f"Z{t}"
        elif kind in ACTIVATIONS:
            name = f"A{t}"
        elif kind in POOLS:
            name = f"P{t}"
        elif kind == "flatten":
            flat += 1
            name = "F" if flat == 1 else f"F{flat}"
        else:
            raise ValueError(kind)
        base, k = name, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        out.append(name)
    # MSE has no link: its prediction is the last stage itself.
    out.append(f"A{t}" if loss != "mse" else out[-1])
    out.append("L")
    return out


__all__ = [
    "ACTIVATIONS",
    "POOLS",
    "TRAINABLE",
    "bar",
    "bias_base",
    "entry_name",
    "grad_key",
    "latex_entry",
    "split_entry",
    "text_entry",
    "param_names",
    "scalar_name",
    "stage_base",
    "stage_names",
    "tex_name",
    "weight_base",
]
