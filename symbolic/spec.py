"""The network's architecture as a frozen, validated value: sizes in, every derived size out."""
from __future__ import annotations

from dataclasses import dataclass

from symbolic.errors import SpecError


def _positive_int(name: str, value: object) -> None:
    # bool is an int subclass; True as a size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name}: expected an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class NetworkSpec:
    """The lecture's network: X (n x n) -> conv k x k -> ReLU -> max-pool -> flatten -> dense -> sigmoid -> BCE.

    The convolution is valid cross-correlation (stride 1, no padding); the pool has a square
    window of side ``pool`` and the same stride.

    >>> NetworkSpec().conv, NetworkSpec().pooled, NetworkSpec().flat, NetworkSpec().n_params
    (4, 2, 4, 15)
    >>> NetworkSpec(n=5, k=2).conv
    4
    """

    n: int = 6
    k: int = 3
    pool: int = 2

    def __post_init__(self) -> None:
        _positive_int("n", self.n)
        _positive_int("k", self.k)
        _positive_int("pool", self.pool)
        if self.k > self.n:
            raise SpecError(f"k: expected a filter no larger than the input (k <= n = {self.n}), got {self.k}")
        conv = self.n - self.k + 1
        if conv % self.pool:
            raise SpecError(
                f"k: the conv output is {conv}x{conv} (n - k + 1), which a {self.pool}x{self.pool} "
                f"pool with stride {self.pool} does not divide; expected n - k + 1 to be a multiple of {self.pool}"
            )

    @property
    def conv(self) -> int:
        """Side of Z1 and A1: n - k + 1."""
        return self.n - self.k + 1

    @property
    def pooled(self) -> int:
        """Side of P1."""
        return self.conv // self.pool

    @property
    def flat(self) -> int:
        """Length of F, and so the number of weights in W2."""
        return self.pooled * self.pooled

    @property
    def n_params(self) -> int:
        """Trainable parameters: k*k + 1 in the conv layer, flat + 1 in the dense layer."""
        return self.k * self.k + 1 + self.flat + 1
