"""Make the project root (for `symbolic`) and this directory (for `oracles`) importable.

pytest's default "prepend" import mode only puts tests/ on sys.path when tests/ is not a package,
and never the project root, so `python -m pytest` and plain `pytest` would otherwise differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent
_ROOT = _TESTS.parent
for _p in (str(_TESTS), str(_ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# Property tests are reproducible: the same examples every run (in CI and here), and a failure
# prints the example that broke it. Tests that set their own settings inherit these.
from hypothesis import settings  # noqa: E402

settings.register_profile("cnn-derive", derandomize=True, print_blob=True, deadline=None)
settings.load_profile("cnn-derive")
