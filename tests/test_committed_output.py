"""The committed handouts (output/seed, output/part3) are exactly what `cnn-derive build` writes today.

The PDF is not compared: it is compiled by whatever TeX the machine has.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "output" / "seed"
FIX = "run `cnn-derive build` (from the repository's top folder) and commit output/seed"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fresh") / "seed"
    proc = subprocess.run(
        [sys.executable, "-m", "render.cli", "build", "--out", str(out), "--format", "md,tex", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"cnn-derive build failed: {proc.stderr}"
    return out


def first_difference(committed: str, fresh: str) -> str:
    diff = difflib.unified_diff(committed.splitlines(), fresh.splitlines(), "committed", "fresh", n=1, lineterm="")
    lines = list(diff)
    return "\n".join(lines[:12]) + ("\n..." if len(lines) > 12 else "")


def figure_names(folder: Path) -> list:
    return sorted(p.name for p in (folder / "figures").glob("*.png"))


@pytest.mark.parametrize("name", ["handout.md", "handout.tex"])
def test_committed_handout_is_current(name, fresh):
    committed = COMMITTED / name
    assert committed.is_file(), f"{committed.relative_to(ROOT)} is missing: {FIX}"
    old, new = committed.read_bytes(), (fresh / name).read_bytes()
    if old != new:
        pytest.fail(
            f"output/seed/{name} is out of date: {FIX}\n{first_difference(old.decode('utf-8', 'replace'), new.decode('utf-8', 'replace'))}"
        )


def test_committed_figures_are_current(fresh):
    assert (COMMITTED / "figures").is_dir(), f"output/seed/figures is missing: {FIX}"
    committed, current = figure_names(COMMITTED), figure_names(fresh)
    assert current, "the fresh build wrote no figures"
    assert committed == current, f"output/seed/figures has {committed}, the build writes {current}: {FIX}"
    stale = [n for n in current if (COMMITTED / "figures" / n).read_bytes() != (fresh / "figures" / n).read_bytes()]
    assert not stale, f"output/seed/figures/{', '.join(stale)} out of date: {FIX}"


# -- output/part3: the per-layer handout of the part3 preset ------------------------------------------------

PART3 = ROOT / "output" / "part3"
FIX_PART3 = "run `cnn-derive build --spec part3 --format md,tex,pdf` (from the repository's top folder) and commit output/part3"


@pytest.fixture(scope="module")
def fresh_part3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fresh") / "part3"
    proc = subprocess.run(
        [sys.executable, "-m", "render.cli", "build", "--spec", "part3", "--out", str(out), "--format", "md,tex", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"cnn-derive build --spec part3 failed: {proc.stderr}"
    return out


@pytest.mark.parametrize("name", ["handout.md", "handout.tex"])
def test_committed_part3_handout_is_current(name, fresh_part3):
    committed = PART3 / name
    assert committed.is_file(), f"{committed.relative_to(ROOT)} is missing: {FIX_PART3}"
    old, new = committed.read_bytes(), (fresh_part3 / name).read_bytes()
    if old != new:
        pytest.fail(
            f"output/part3/{name} is out of date: {FIX_PART3}\n"
            f"{first_difference(old.decode('utf-8', 'replace'), new.decode('utf-8', 'replace'))}"
        )


def test_committed_part3_figures_are_current(fresh_part3):
    assert (PART3 / "figures").is_dir(), f"output/part3/figures is missing: {FIX_PART3}"
    committed, current = figure_names(PART3), figure_names(fresh_part3)
    assert current, "the fresh build wrote no figures"
    assert committed == current, f"output/part3/figures has {committed}, the build writes {current}: {FIX_PART3}"
    stale = [n for n in current if (PART3 / "figures" / n).read_bytes() != (fresh_part3 / "figures" / n).read_bytes()]
    assert not stale, f"output/part3/figures/{', '.join(stale)} out of date: {FIX_PART3}"
