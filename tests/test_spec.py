"""Tests for symbolic.spec: presets load, shapes and stages follow the layers, defaults are filled
in, and every invalid spec is one SpecError naming the layer (index and type) and the field.

Shapes are held against ``reference.shapes`` (written from the spec format alone, no code shared
with ``symbolic/``) and against sizes worked out by hand in the comments.
"""

from __future__ import annotations

import copy
import sys

import pytest
import reference as R

from symbolic.errors import CnnDeriveError, SpecError
from symbolic.spec import LayerSpec, NetworkSpec, load_spec, parse_spec, preset_summary, presets, seed_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PRESETS = ("seed", "part3", "lenet-tiny")


def preset_dict(name: str) -> dict:
    return tomllib.loads(presets()[name].read_text(encoding="utf-8"))


def tiny(layers: list, **top) -> dict:
    """A spec dict; the default ends in flatten + dense(1) so that bce fits."""
    data = {"input": [6, 6], "loss": "bce", "layers": layers}
    data.update(top)
    return data


TAIL = [{"type": "flatten"}, {"type": "dense", "units": 1}]


def conv(**options) -> dict:
    return {"type": "conv2d", "filters": 1, "kernel": 3, **options}


def spec_error(data: dict, source: str = "spec") -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data, source)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def full_shapes(spec: NetworkSpec, data: dict) -> None:
    """Every stage and parameter shape of ``spec`` against the reference's, in full layout."""
    ref = R.shapes(data)
    names = spec.stages[1:-1]  # without X and L; the last name is the loss's link output
    assert list(names) == R.stage_names(data)
    for name, shape in zip(names, spec.shapes[1:]):
        assert shape == ref[name], name
    assert spec.param_shapes == {k: v for k, v in ref.items() if k[:1] in "WB" and k[1:].isdigit()}
    x = ref["X"] if len(ref["X"]) == 3 else (1, *ref["X"])
    assert spec.input == x
    assert spec.y_shape == ref["Y"]


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------
def test_the_three_presets_are_shipped():
    assert set(PRESETS) <= set(presets())
    for name in PRESETS:
        assert presets()[name].is_file()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_matches_the_reference(name):
    spec = load_spec(name)
    assert isinstance(spec, NetworkSpec)
    assert spec.name == name and spec.label == name
    full_shapes(spec, preset_dict(name))
    # Loading by path gives the same network as loading by name.
    assert load_spec(str(presets()[name])) == spec
    assert load_spec(presets()[name]) == spec


@pytest.mark.parametrize("name", PRESETS)
def test_preset_summary_is_the_first_comment(name):
    first = next(line for line in presets()[name].read_text(encoding="utf-8").splitlines() if line.startswith("#"))
    summary = preset_summary(presets()[name])
    assert summary and not summary.startswith("#")
    assert first.endswith(summary)


def test_load_spec_none_is_the_seed():
    assert load_spec() == load_spec("seed") == seed_spec()


def test_seed_by_hand():
    s = load_spec("seed")
    # 6×6 → conv 3×3 → 4×4 → relu → max-pool 2 → 2×2 → flatten 4 → dense 1
    assert s.input == (1, 6, 6) and s.input_rank == 2
    assert s.shapes == ((1, 6, 6), (1, 4, 4), (1, 4, 4), (1, 2, 2), (4,), (1,))
    assert s.stages == ("X", "Z1", "A1", "P1", "F", "Z2", "A2", "L")
    assert s.param_shapes == {"W1": (1, 1, 3, 3), "B1": (1,), "W2": (1, 4), "B2": (1,)}
    assert s.n_params == 9 + 1 + 4 + 1
    assert s.loss == "bce" and s.units == 1 and s.y_shape == ()


def test_part3_by_hand():
    s = load_spec("part3")
    # 2×9×9 → conv 2 filters 3×3 → 2×7×7 → relu → max-pool 3 stride 2: (7 − 3)/2 + 1 = 3
    # → conv 3×3 stride 2 padding 1: (3 + 2 − 3)/2 + 1 = 2 → tanh → avg-pool 2 → 2×1×1
    # → flatten 2 → dense 3
    assert s.shapes == (
        (2, 9, 9),
        (2, 7, 7),
        (2, 7, 7),
        (2, 3, 3),
        (2, 2, 2),
        (2, 2, 2),
        (2, 1, 1),
        (2,),
        (3,),
    )
    assert s.stages == ("X", "Z1", "A1", "P1", "Z2", "A2", "P2", "F", "Z3", "A3", "L")
    assert s.param_shapes == {
        "W1": (2, 2, 3, 3),
        "B1": (2,),
        "W2": (2, 2, 3, 3),
        "B2": (2,),
        "W3": (3, 2),
        "B3": (3,),
    }
    assert s.n_params == 36 + 2 + 36 + 2 + 6 + 3 == 85
    assert s.loss == "softmax_ce" and s.units == 3 and s.y_shape == (3,)
    maxpool, conv2 = s.layers[2], s.layers[3]
    assert maxpool.type == "maxpool" and maxpool.window == (3, 3) and maxpool.stride == (2, 2)
    assert conv2.type == "conv2d" and conv2.stride == (2, 2) and conv2.padding == (1, 1)


def test_lenet_tiny_by_hand():
    s = load_spec("lenet-tiny")
    # 1×8×8 → conv 2×3×3 → 2×6×6 → tanh → avg 2 → 2×3×3 → conv 3×2×2 → 3×2×2 → tanh
    # → avg 2 → 3×1×1 → flatten 3 → dense 4 → tanh → dense 2
    assert s.shapes == (
        (1, 8, 8),
        (2, 6, 6),
        (2, 6, 6),
        (2, 3, 3),
        (3, 2, 2),
        (3, 2, 2),
        (3, 1, 1),
        (3,),
        (4,),
        (4,),
        (2,),
    )
    assert s.stages == ("X", "Z1", "A1", "P1", "Z2", "A2", "P2", "F", "Z3", "A3", "Z4", "A4", "L")
    assert s.param_shapes == {
        "W1": (2, 1, 3, 3),
        "B1": (2,),
        "W2": (3, 2, 2, 2),
        "B2": (3,),
        "W3": (4, 3),
        "B3": (4,),
        "W4": (2, 4),
        "B4": (2,),
    }
    assert s.n_params == 18 + 2 + 24 + 3 + 12 + 4 + 8 + 2
    assert s.y_shape == (2,)
    # [1, 8, 8] is written with its channel axis
    assert s.input_rank == 3


# --------------------------------------------------------------------------------------------
# defaults, pairs, input forms
# --------------------------------------------------------------------------------------------
def test_defaults():
    s = parse_spec(
        tiny(
            [
                {"type": "conv2d", "filters": 2, "kernel": 3},
                {"type": "leaky_relu"},
                {"type": "maxpool", "window": 2},
                {"type": "avgpool", "window": 2},
                *TAIL,
            ],
            input=[1, 10, 10],
        )
    )
    c, leaky, mp, ap = s.layers[:4]
    assert c.stride == (1, 1) and c.padding == (0, 0)
    assert leaky.slope == 0.01
    assert mp.stride == mp.window == (2, 2)  # stride defaults to the window: no overlap
    assert ap.stride == ap.window == (2, 2)
    assert s.ties == "first" and s.batch == 1 and s.name == ""
    # 10 → 8 → 8 → 4 → 2
    assert s.shapes[:5] == ((1, 10, 10), (2, 8, 8), (2, 8, 8), (2, 4, 4), (2, 2, 2))
    assert s.label  # something to show even without a name


def test_pool_stride_default_follows_a_pair_window():
    s = parse_spec(tiny([{"type": "maxpool", "window": [2, 3]}, *TAIL]))
    assert s.layers[0].stride == (2, 3)
    assert s.shapes[1] == (1, 3, 2)


def test_explicit_options():
    s = parse_spec(
        tiny(
            [
                {"type": "leaky_relu", "slope": 0.2},
                *TAIL,
            ],
            ties="split",
            batch=3,
            name="mine",
        )
    )
    assert s.layers[0].slope == 0.2 and s.ties == "split" and s.batch == 3 and s.label == "mine"
    assert parse_spec(tiny(TAIL, ties="all")).ties == "all"
    assert parse_spec(tiny([{"type": "leaky_relu", "slope": 0}, *TAIL])).layers[0].slope == 0.0


def test_pairs_for_kernel_stride_padding_window():
    data = tiny(
        [
            {"type": "conv2d", "filters": 2, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0]},
            {"type": "tanh"},
            {"type": "maxpool", "window": [2, 3], "stride": [2, 1]},
            *TAIL,
        ],
        input=[2, 7, 6],
    )
    s = parse_spec(data)
    c, _, mp = s.layers[:3]
    assert (c.kernel, c.stride, c.padding) == ((3, 2), (2, 1), (1, 0))
    assert (mp.window, mp.stride) == ((2, 3), (2, 1))
    # height: (7 + 2 − 3)/2 + 1 = 4, width: (6 − 2)/1 + 1 = 5; pool: (4 − 2)/2 + 1 = 2, (5 − 3)/1 + 1 = 3
    assert s.shapes[1] == (2, 4, 5) and s.shapes[3] == (2, 2, 3)
    full_shapes(s, data)


def test_an_integer_is_the_same_as_a_square_pair():
    a = parse_spec(tiny([conv(kernel=3, stride=1, padding=1), {"type": "maxpool", "window": 2}, *TAIL]))
    b = parse_spec(tiny([conv(kernel=[3, 3], stride=[1, 1], padding=[1, 1]), {"type": "maxpool", "window": [2, 2]}, *TAIL]))
    assert a == b


def test_two_numbers_of_input_mean_one_channel():
    two = parse_spec(tiny(TAIL, input=[6, 6]))
    three = parse_spec(tiny(TAIL, input=[1, 6, 6]))
    assert two.input == three.input == (1, 6, 6)
    assert (two.input_rank, three.input_rank) == (2, 3)
    assert two.shapes == three.shapes and two.param_shapes == three.param_shapes
    rect = parse_spec(tiny(TAIL, input=[3, 5]))
    assert rect.input == (1, 3, 5) and rect.param_shapes["W1"] == (1, 15)


def test_mse_takes_a_vector_label():
    s = parse_spec(tiny([{"type": "flatten"}, {"type": "dense", "units": 3}], loss="mse"))
    assert s.y_shape == (3,) and s.units == 3


def test_seed_spec_sizes():
    s = seed_spec(8, 3)
    assert s.input == (1, 8, 8) and s.param_shapes["W2"] == (1, 9)
    assert seed_spec(5, 2).shapes == ((1, 5, 5), (1, 4, 4), (1, 4, 4), (1, 2, 2), (4,), (1,))
    assert seed_spec(6, 3) == load_spec("seed")


def test_layer_spec_defaults():
    layer = LayerSpec("conv2d", filters=2, kernel=(3, 3))
    assert layer.stride == (1, 1) and layer.padding == (0, 0) and layer.slope == 0.01


def test_spec_is_frozen_and_hashable():
    s = load_spec("part3")
    with pytest.raises(AttributeError):
        s.loss = "mse"
    assert hash(s) == hash(load_spec("part3"))


# --------------------------------------------------------------------------------------------
# invalid specs: one SpecError naming the layer (index and type) and the field
# --------------------------------------------------------------------------------------------
LAYER_ERRORS = {
    # name: (layers, the message's start, words it must contain)
    "stride-0": ([conv(stride=0)], "layer 1 (conv2d): stride:", [">= 1"]),
    "stride-pair-0": ([conv(stride=[1, 0])], "layer 1 (conv2d): stride:", [">= 1"]),
    "kernel-0": ([conv(kernel=0)], "layer 1 (conv2d): kernel:", [">= 1"]),
    "kernel-three-numbers": ([conv(kernel=[3, 3, 3])], "layer 1 (conv2d): kernel:", ["[h, w]"]),
    "kernel-boolean": ([conv(kernel=True)], "layer 1 (conv2d): kernel:", ["True"]),
    "kernel-float": ([conv(kernel=2.5)], "layer 1 (conv2d): kernel:", ["2.5"]),
    "kernel-string": ([conv(kernel="3")], "layer 1 (conv2d): kernel:", ["'3'"]),
    "filters-0": ([conv(filters=0)], "layer 1 (conv2d): filters:", ["got 0"]),
    "filters-missing": ([{"type": "conv2d", "kernel": 3}], "layer 1 (conv2d): filters:", ["missing"]),
    "kernel-missing": ([{"type": "conv2d", "filters": 1}], "layer 1 (conv2d): kernel:", ["missing"]),
    "padding-negative": ([conv(padding=-1)], "layer 1 (conv2d): padding:", [">= 0"]),
    "padding-as-large-as-kernel": ([conv(padding=3)], "layer 1 (conv2d): padding:", ["3×3"]),
    "kernel-larger-than-input": ([conv(kernel=7)], "layer 1 (conv2d): kernel:", ["7×7", "6×6"]),
    "kernel-larger-than-padded-input": ([conv(kernel=[9, 3], padding=1)], "layer 1 (conv2d): kernel:", ["9×3", "8×8"]),
    "conv-stride-does-not-tile": ([conv(stride=2)], "layer 1 (conv2d):", ["stride 2", "(6 − 3) is not a multiple of 2"]),
    "pool-window-too-large": ([{"type": "maxpool", "window": 7}], "layer 1 (maxpool):", ["window 7", "7 > 6"]),
    "pool-window-0": ([{"type": "maxpool", "window": 0}], "layer 1 (maxpool): window:", [">= 1"]),
    "pool-stride-0": ([{"type": "avgpool", "window": 2, "stride": 0}], "layer 1 (avgpool): stride:", [">= 1"]),
    "pool-window-missing": ([{"type": "avgpool"}], "layer 1 (avgpool): window:", ["missing"]),
    "pool-unknown-key": ([{"type": "avgpool", "window": 2, "padding": 1}], "layer 1 (avgpool):", ["'padding'", "window, stride"]),
    "conv-unknown-key": ([conv(strides=2)], "layer 1 (conv2d):", ["'strides'", "stride"]),
    "relu-takes-no-options": ([{"type": "relu", "slope": 0.1}], "layer 1 (relu):", ["'slope'"]),
    "leaky-slope-1": ([{"type": "leaky_relu", "slope": 1}], "layer 1 (leaky_relu): slope:", ["[0, 1)"]),
    "leaky-slope-negative": ([{"type": "leaky_relu", "slope": -0.1}], "layer 1 (leaky_relu): slope:", ["[0, 1)"]),
    "leaky-slope-string": ([{"type": "leaky_relu", "slope": "0.1"}], "layer 1 (leaky_relu): slope:", ["'0.1'"]),
    "leaky-slope-boolean": ([{"type": "leaky_relu", "slope": True}], "layer 1 (leaky_relu): slope:", []),
    "unknown-type": ([{"type": "conv3d"}], "layer 1: unknown type 'conv3d'", ["conv2d", "dense"]),
    "no-type": ([{"filters": 1}], "layer 1: no type", ["conv2d"]),
    "dense-units-0": ([{"type": "flatten"}, {"type": "dense", "units": 0}], "layer 2 (dense): units:", ["got 0"]),
    "dense-on-an-image": ([{"type": "dense", "units": 1}], "layer 1 (dense):", ["flatten", "1×6×6"]),
    "conv-after-flatten": ([{"type": "flatten"}, conv()], "layer 2 (conv2d):", ["36"]),
    "pool-after-flatten": ([{"type": "flatten"}, {"type": "maxpool", "window": 2}], "layer 2 (maxpool):", []),
}


@pytest.mark.parametrize("name", list(LAYER_ERRORS))
def test_invalid_layer(name):
    layers, start, words = LAYER_ERRORS[name]
    message = spec_error(tiny(layers + TAIL))
    assert message.startswith(start), message
    for word in words:
        assert word in message, (word, message)


def test_the_error_names_the_right_layer_index():
    layers = [conv(), {"type": "relu"}, {"type": "maxpool", "window": 3}, *TAIL]  # 4×4 input to a 3-window
    message = spec_error(tiny(layers))
    assert message.startswith("layer 3 (maxpool):"), message
    assert "window 3" in message and "4×4" in message


def test_maxpool_window_3_stride_2_on_4x4():
    data = tiny([{"type": "maxpool", "window": 3, "stride": 2}, *TAIL], input=[4, 4])
    message = spec_error(data)
    assert message.startswith("layer 1 (maxpool):"), message
    assert "(4 − 3) is not a multiple of 2" in message


def test_rectangular_pool_misfit_names_the_axis():
    message = spec_error(tiny([{"type": "maxpool", "window": [2, 3]}, *TAIL], input=[4, 4]))
    assert message.startswith("layer 1 (maxpool):") and "width of 4" in message, message


TOP_ERRORS = {
    "bce-with-3-units": (tiny([{"type": "flatten"}, {"type": "dense", "units": 3}]), "loss: bce", ["layer 2 (dense)", "3"]),
    "softmax-with-1-unit": (tiny(TAIL, loss="softmax_ce"), "loss: softmax_ce", ["2 units"]),
    "not-flat-at-the-end": (tiny([conv()]), "loss: bce", ["flat", "1×4×4"]),
    "unknown-loss": (tiny(TAIL, loss="hinge"), "loss:", ["'hinge'", "softmax_ce"]),
    "loss-not-a-string": (tiny(TAIL, loss=3), "loss:", ["3"]),
    "unknown-ties": (tiny(TAIL, ties="last"), "ties:", ["'last'", "first"]),
    "no-layers": (tiny([]), "layers:", []),
    "layers-not-tables": (tiny([1, 2]), "layers:", ["[[layers]]"]),
    "layers-a-table": (tiny({"type": "flatten"}), "layers:", []),
    "input-one-number": (tiny(TAIL, input=[6]), "input:", ["[6]"]),
    "input-four-numbers": (tiny(TAIL, input=[1, 1, 6, 6]), "input:", []),
    "input-zero": (tiny(TAIL, input=[0, 6]), "input:", ["[0, 6]"]),
    "input-boolean": (tiny(TAIL, input=[True, 6]), "input:", []),
    "input-a-number": (tiny(TAIL, input=6), "input:", []),
    "name-not-a-string": (tiny(TAIL, name=3), "name:", []),
    "missing-input": ({"loss": "bce", "layers": TAIL}, "input: missing", []),
    "missing-loss": ({"input": [6, 6], "layers": TAIL}, "loss: missing", []),
    "missing-layers": ({"input": [6, 6], "loss": "bce"}, "layers: missing", []),
    "batch-boolean": (tiny(TAIL, batch=True), "batch:", []),
}


@pytest.mark.parametrize("name", list(TOP_ERRORS))
def test_invalid_top_level(name):
    data, start, words = TOP_ERRORS[name]
    message = spec_error(data)
    assert message.startswith(start), message
    for word in words:
        assert word in message, (word, message)


def test_unknown_top_level_key_names_the_source_and_the_key():
    message = spec_error(tiny(TAIL, inputs=[6, 6]), source="net.toml")
    assert message.startswith("net.toml: unknown key 'inputs'"), message
    assert "input" in message.partition(";")[2]


def test_not_a_table():
    assert spec_error([1, 2], source="net.toml").startswith("net.toml: expected a TOML table")  # type: ignore[arg-type]


def test_batch_zero_names_the_field_once():
    message = spec_error(tiny(TAIL, batch=0))
    assert message.startswith("batch: expected an integer >= 1"), message


def test_bad_integer_is_quoted_as_written():
    assert spec_error(tiny([conv(stride=0), *TAIL])).endswith("got 0")


def test_spec_error_is_a_cnn_derive_error():
    assert issubclass(SpecError, CnnDeriveError)


def test_presets_are_not_changed_by_parsing():
    data = preset_dict("part3")
    before = copy.deepcopy(data)
    parse_spec(data)
    assert data == before


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('input = [6, 6\nloss = "bce"\n', encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    message = str(info.value)
    assert message.startswith("broken.toml: not valid TOML"), message
    assert "\n" not in message


def test_duplicate_toml_key_names_the_file(tmp_path):
    path = tmp_path / "dup.toml"
    path.write_text('input = [6, 6]\nloss = "bce"\nloss = "mse"\n', encoding="utf-8")
    with pytest.raises(SpecError, match=r"^dup\.toml: not valid TOML"):
        load_spec(str(path))


def test_spec_file_errors_name_the_layer(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(
        'input = [4, 4]\nloss = "bce"\n[[layers]]\ntype = "maxpool"\nwindow = 3\nstride = 2\n'
        '[[layers]]\ntype = "flatten"\n[[layers]]\ntype = "dense"\nunits = 1\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match=r"^layer 1 \(maxpool\): .*\(4 − 3\) is not a multiple of 2"):
        load_spec(path)


def test_a_valid_file_loads(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(presets()["part3"].read_text(encoding="utf-8"), encoding="utf-8")
    assert load_spec(str(path)) == load_spec("part3")


def test_not_utf8_file(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(b'name = "\xe9"\n')
    with pytest.raises(SpecError, match=r"^--spec: cannot read"):
        load_spec(str(path))


@pytest.mark.parametrize("where", ["nosuch", "nosuch.toml"])
def test_no_such_preset_or_file(where, tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(str(tmp_path / where) if where.endswith(".toml") else where)
    message = str(info.value)
    assert message.startswith("--spec: no preset or file"), message
    for name in PRESETS:
        assert name in message


def test_a_directory_is_not_a_spec(tmp_path):
    with pytest.raises(SpecError, match=r"^--spec: no preset or file"):
        load_spec(str(tmp_path))


def test_seed_spec_refuses_bad_sizes():
    with pytest.raises(SpecError, match=r"^n: expected an integer >= 1"):
        seed_spec(0, 3)
    with pytest.raises(SpecError, match=r"^k: expected a filter no larger than the input"):
        seed_spec(5, 9)
    with pytest.raises(SpecError, match=r"^n: the conv output is 5×5"):
        seed_spec(7, 3)
