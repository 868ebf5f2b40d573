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
import symengine as se

from symbolic.numeric import cache, compile_network, llvm
from symbolic.spec import load_spec

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
    spec = load_spec("part3")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20, *spec.input))
    Y = rng.dirichlet(np.ones(spec.units), size=20)
    params = {k: rng.normal(size=s) * 0.4 for k, s in spec.param_shapes.items()}
    a = compile_network(spec, backend="llvm")(X, Y, **params)
    b = compile_network(spec, backend="numpy")(X, Y, **params)
    assert a.keys() == b.keys()
    for key in a:
        scale = np.max(np.abs(b[key])) if b[key].size else 0.0
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-13 * scale, err_msg=key)


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
