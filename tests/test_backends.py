"""The compiled (LLVM) backend: same numbers as the numpy backend, a disk cache a second process
reuses, a fallback when LLVM is missing, and its own log1p accurate to the last digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
import reference as R
import symengine as se
import tomllib

from symbolic.numeric import cache, compile_network, llvm
from symbolic.spec import load_spec, presets, seed_spec

ROOT = Path(__file__).resolve().parents[1]


def test_log1p_expression_has_full_relative_precision():
    u = se.Symbol("u")
    f = se.Lambdify([u], [llvm.log1p_expr(u)], backend="llvm", cse=True)
    points = np.concatenate([np.geomspace(1e-300, 1.0, 400), [0.0099999, 0.01, 0.0100001]])
    got = np.asarray(f(points[:, None])).ravel()
    with mpmath.workdps(50):
        for x, y in zip(points, got):
            want = mpmath.log1p(mpmath.mpf(float(x)))
            assert abs(mpmath.mpf(float(y)) - want) <= 2e-14 * want, (x, y)


def test_llvm_and_numpy_backends_agree_on_every_output():
    # The two backends evaluate the same expressions in different orders; they may differ by
    # rounding, which grows only where terms cancel: 1e-12 relative plus 64 eps times the
    # per-entry rounding scale of the reference (no absolute floor). Masks and routes, which
    # have no scale, must agree exactly.
    spec = load_spec("part3")
    d = tomllib.loads(presets()["part3"].read_text(encoding="utf-8"))
    case = R.random_case(d, np.random.default_rng(4), batch=20)
    per_sample = [R.error_scales(d, {k: (v[i] if k in ("X", "Y") else v) for k, v in case.items()}) for i in range(20)]
    scales = {k: np.stack([np.asarray(s[k]) for s in per_sample]) for k in per_sample[0]}
    c = dict(case)
    X, Y = c.pop("X"), c.pop("Y")
    a = compile_network(spec, backend="llvm")(X, Y, **c)
    b = compile_network(spec, backend="numpy")(X, Y, **c)
    assert a.keys() == b.keys()
    for key in a:
        scale = np.asarray(scales[key]).reshape(b[key].shape) if key in scales else 0.0
        bad = np.abs(a[key] - b[key]) > 1e-12 * np.abs(b[key]) + 64 * np.finfo(float).eps * scale
        assert not bad.any(), (key, a[key][bad][:3], b[key][bad][:3])


def test_per_sample_and_mean_are_consistent():
    spec = load_spec()
    net = compile_network(spec, backend="llvm", outputs="gradients")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(7, 6, 6)), rng.uniform(size=7)
    params = {k: rng.normal(size=s) for k, s in spec.param_shapes.items()}
    each, mean = net(X, Y, **params), net(X, Y, mean=True, **params)
    assert sorted(each) == sorted(["L", "A2", "dL/dW1", "dL/dB1", "dL/dW2", "dL/dB2"])
    for key in each:
        np.testing.assert_allclose(mean[key], each[key].mean(axis=0), rtol=1e-14)


def test_a_second_process_loads_the_compiled_code_from_the_cache(tmp_path):
    env = {**os.environ, "CNN_DERIVE_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    code = (
        "import time; t = time.perf_counter();"
        "from symbolic.numeric import compile_network; from symbolic.spec import load_spec;"
        "net = compile_network(load_spec('lenet-tiny'), backend='llvm', outputs='gradients');"
        "print(net.compile_seconds)"
    )
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    files = list(tmp_path.glob("*.pickle"))
    assert len(files) == 1
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # The cache hands back the first process's program, compile time and all.
    assert second.stdout == first.stdout
    assert list(tmp_path.glob("*.pickle")) == files


def test_a_damaged_cache_file_is_recompiled_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path))
    spec = load_spec()
    name = cache.key(spec, "llvm", "gradients")
    (tmp_path / name).write_bytes(b"not a pickle")
    compile_network.cache_clear()
    net = compile_network(spec, backend="llvm", outputs="gradients")
    out = net(np.zeros((6, 6)), 1.0, W1=np.zeros((3, 3)), B1=0.0, W2=np.zeros(4), B2=0.0)
    assert float(out["L"]) == pytest.approx(np.log(2), rel=1e-15)
    compile_network.cache_clear()


def test_without_llvm_it_falls_back_to_numpy_with_one_notice(monkeypatch, capsys):
    monkeypatch.setattr(llvm, "available", lambda: False)
    monkeypatch.setattr("symbolic.numeric._said", set())
    compile_network.cache_clear()
    net = compile_network(load_spec(), backend="llvm", outputs="gradients")
    assert net.backend == "numpy"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "numpy backend" in err
    compile_network.cache_clear()


def test_auto_fuses_the_seed_family_and_goes_level_by_level_for_deep_networks(tmp_path, monkeypatch):
    # The choice is measured on the expressions, not read from a name: the seed family inlines
    # into one function; part3's nested Piecewise would inline into 5e12 tree nodes, so it gets
    # one function per level; past LEVEL_ATOMS atoms, numpy's staged program.
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path))
    compile_network.cache_clear()
    seed, part3 = compile_network(seed_spec(8, 3), outputs="gradients"), compile_network(load_spec("part3"), outputs="gradients")
    assert (seed.backend, seed._program.fused) == ("llvm", True)
    assert (part3.backend, part3._program.fused) == ("llvm", False)
    monkeypatch.setattr(llvm, "LEVEL_ATOMS", 100)
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path / "other"))
    compile_network.cache_clear()
    assert compile_network(load_spec("part3"), outputs="gradients").backend == "numpy"
    compile_network.cache_clear()


def test_the_fused_program_at_o1_agrees_with_numpy(tmp_path, monkeypatch):
    # Large programs compile at -O1 (28×28 does); the same expressions must give the same numbers.
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(llvm, "O1_NODES", 0)
    compile_network.cache_clear()
    spec = seed_spec(9, 4)
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(30, 9, 9)), rng.uniform(size=30)
    params = {k: rng.normal(size=s) for k, s in spec.param_shapes.items()}
    a = compile_network(spec, backend="llvm")(X, Y, **params)
    b = compile_network(spec, backend="numpy")(X, Y, **params)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, err_msg=key)
    compile_network.cache_clear()


def test_one_sample_fast_path_gives_the_batch_path_numbers():
    # One sample goes a short way (no batch reshapes); it must give what a batch of it gives.
    spec = load_spec()
    net = compile_network(spec)
    rng = np.random.default_rng(3)
    X, W1, W2 = rng.normal(size=(6, 6)), rng.normal(size=(3, 3)), rng.normal(size=4)
    one = net(X, 0.25, W1=W1, B1=0.5, W2=W2, B2=-1.0)
    two = net(np.stack([X, X]), [0.25, 0.25], W1=W1, B1=0.5, W2=W2, B2=-1.0)
    as_lists = net(X.tolist(), 0.25, W1=W1.tolist(), B1=[0.5], W2=W2.tolist(), B2=-1)
    assert one.keys() == two.keys() == as_lists.keys()
    for key in one:
        assert np.array_equal(one[key], two[key][0]) and np.array_equal(one[key], as_lists[key]), key


def test_a_level_by_level_program_gives_the_same_rows_in_chunks(monkeypatch):
    # Level by level, rows run in chunks (a remainder too); each row's numbers must not depend on that.
    spec = load_spec("part3")
    net = compile_network(spec, backend="llvm", outputs="gradients")
    assert not net._program.fused
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(23, net.n_inputs))
    whole = net._program(rows)
    monkeypatch.setattr(llvm, "CHUNK", 5)
    chunked = net._program(rows)
    one_by_one = np.stack([net._program(rows[i : i + 1])[0] for i in range(len(rows))])
    assert np.array_equal(whole, chunked) and np.array_equal(whole, one_by_one)


@pytest.mark.parametrize("name", ["seed", "part3"])
def test_an_empty_batch_gives_empty_outputs(name):
    # Both LLVM forms (fused for the seed, level by level for part3) take a batch of no samples.
    spec = load_spec(name)
    net = compile_network(spec, backend="llvm", outputs="gradients")
    X = np.zeros((0, *spec.input))
    Y = np.zeros((0, *spec.y_shape)) if spec.loss == "softmax_ce" else np.zeros(0)
    out = net(X, Y, **{k: np.zeros(s) for k, s in spec.param_shapes.items()})
    assert all(v.shape[0] == 0 for v in out.values())


def test_an_unwritable_cache_is_skipped_and_said(tmp_path, monkeypatch):
    # The cache folder under a file cannot be made: the program still compiles and runs, and
    # store says it kept nothing (the compile notice then says "not cached"), leaving no file.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(blocker / "cache"))
    compile_network.cache_clear()
    net = compile_network(load_spec(), backend="llvm", outputs="gradients")
    out = net(np.zeros((6, 6)), 1.0, W1=np.zeros((3, 3)), B1=0.0, W2=np.zeros(4), B2=0.0)
    assert float(out["L"]) == pytest.approx(np.log(2), rel=1e-15)
    assert cache.store("probe.pickle", {"a": 1}) is False
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path / "ok"))
    assert cache.store("probe.pickle", {"a": 1}) is True and [p.name for p in (tmp_path / "ok").iterdir()] == ["probe.pickle"]
    compile_network.cache_clear()
