"""The general proofs' disk cache: a cold cache proves, a warm one gives back what was proven, a bad file is never trusted."""

from __future__ import annotations

import pytest

from symbolic import general, general_cache
from symbolic.general import prove_general


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path))
    return tmp_path


def test_cold_proves_warm_loads_the_same_results_and_bad_files_are_proven_again(cache_dir):
    calls = []

    def prove():
        calls.append(1)
        return prove_general()

    first = general_cache.cached_results(prove)
    stored = cache_dir / general_cache.key()
    assert len(calls) == 1 and stored.exists(), "a cold cache proves, and keeps the results"
    assert {r.status for r in first} == {"proven"}

    again = general_cache.cached_results(prove)
    assert len(calls) == 1, "a warm cache does not prove again"
    assert general_cache.same(again, first) and again is not first
    # What a document prints from them: statements, steps (an unevaluated Eq(0, 0) stays one).
    assert [str(r.steps[-1]) for r in again] == [str(r.steps[-1]) for r in first]
    assert [r.rule.statement for r in again] == [r.rule.statement for r in first]

    for bad in (b"", b"not a pickle", stored.read_bytes()[: len(stored.read_bytes()) // 2]):
        stored.write_bytes(bad)
        assert general_cache.same(general_cache.cached_results(lambda: (calls.append(1), first)[1]), first)
    assert len(calls) == 4, "a truncated or foreign file is ignored and the rules proven again"


def test_an_unwritable_cache_still_proves(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CNN_DERIVE_CACHE", str(blocker / "cache"))
    got = general_cache.cached_results(lambda: ["proven anyway"])
    assert got == ["proven anyway"]


def test_prove_general_without_cache_never_uses_it(monkeypatch):
    def refuse(prove):
        raise AssertionError("prove_general() read the cache")

    monkeypatch.setattr(general_cache, "cached_results", refuse)
    # No rules to prove, so that only the choice between proving and the cache is timed.
    monkeypatch.setattr(general, "_rules", lambda: ((), (), {}))
    assert prove_general() == []  # verify --general's call
    with pytest.raises(AssertionError, match="read the cache"):
        prove_general(cache=True)
