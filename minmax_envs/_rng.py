"""Counter-based per-seed random streams, batched over seeds.

Every seed slot ``i`` owns a 64-bit key (its seed) and a draw counter. A draw of ``n`` numbers hashes
``(key_i, counter_i, j)`` for ``j < n`` with a 32-bit integer hash, so slot ``i`` of a batch sees exactly
the numbers a batch of one seeded with the same key would see, on any device and whatever the batch
size. All of it is integer tensor arithmetic: no Python loop over seeds and no host-device sync.

The hash is Wellons' ``lowbias32`` (https://nullprogram.com/blog/2018/07/31/). Multiplications are
split in 16-bit halves so that no intermediate exceeds 2**63: the arithmetic is exact in int64 on
every backend.
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_TWO_POW_32 = 4294967296.0


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x * c) mod 2**32`` for ``0 <= x < 2**32`` held in int64, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 integer hash of int64 values in ``[0, 2**32)``."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class SeedStreams:
    """Independent random streams for ``num_seeds`` slots, slot ``i`` keyed by its own seed.

    Args:
        seeds: int64 tensor of shape ``(N,)`` with the seed of every slot (``0 <= seed < 2**63``).
        salt: distinguishes independent families of streams drawn from the same seeds
            (training data vs. evaluation samples, for instance).
    """

    def __init__(self, seeds: torch.Tensor, salt: int = 0) -> None:
        if seeds.dtype != torch.int64 or seeds.ndim != 1:
            raise ValueError(f"seeds must be a 1-D int64 tensor, got {seeds.dtype} of shape {tuple(seeds.shape)}")
        self.device = seeds.device
        self.counters = torch.zeros_like(seeds)
        self.salt = salt & _MASK32
        self.keys = self._derive_keys(seeds)
        self.advance: torch.Tensor | None = None

    def _derive_keys(self, seeds: torch.Tensor) -> torch.Tensor:
        lo, hi = seeds & _MASK32, (seeds >> 32) & _MASK32
        k0 = hash32(lo ^ hash32(torch.full_like(lo, self.salt)))
        k1 = hash32(hi ^ hash32(k0 ^ _GOLDEN))
        return torch.stack([k0, k1], dim=1)  # (N, 2)

    @property
    def num_seeds(self) -> int:
        return self.keys.shape[0]

    def reseed(self, mask: torch.Tensor, seeds: torch.Tensor) -> None:
        """Give the slots where ``mask`` is true fresh streams keyed by ``seeds`` (counters back to 0)."""
        self.keys = torch.where(mask[:, None], self._derive_keys(seeds), self.keys)
        self.counters = torch.where(mask, torch.zeros_like(self.counters), self.counters)

    def state(self) -> dict[str, torch.Tensor]:
        return {"keys": self.keys.clone(), "counters": self.counters.clone()}

    def bits(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Uniform 32-bit integers in int64, shape ``(N, *shape)``.

        Advances the counter of every slot, or only of the slots where :attr:`advance` is true (the
        environment sets it so that stopped seeds keep their streams where they are)."""
        n = math.prod(shape)
        base = hash32(self.keys[:, 0] ^ hash32(self.counters & _MASK32))  # (N,)
        j = torch.arange(n, device=self.device, dtype=torch.int64)
        x = (base[:, None] + _mul32(j, _GOLDEN)[None, :]) & _MASK32
        out = hash32(hash32(x) ^ self.keys[:, 1:2])
        self.counters = self.counters + (1 if self.advance is None else self.advance.to(torch.int64))
        return out.reshape(self.num_seeds, *shape)

    def bits_many(self, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """``[self.bits(s) for s in shapes]``, the very same numbers and counters, in one hashing pass: a
        fixed number of kernels whatever the number of draws (what a game drawing several tensors per step
        wants)."""
        ns = [math.prod(s) for s in shapes]
        step = torch.ones_like(self.counters) if self.advance is None else self.advance.to(torch.int64)
        counters = self.counters[:, None] + step[:, None] * torch.arange(len(ns), device=self.device)  # (N, k)
        base = hash32(self.keys[:, :1] ^ hash32(counters & _MASK32))  # (N, k)
        spread = torch.cat([base[:, i:i + 1].expand(-1, n) for i, n in enumerate(ns)], dim=1)
        x = (spread + self._offsets(tuple(ns))[None, :]) & _MASK32
        out = hash32(hash32(x) ^ self.keys[:, 1:2])
        self.counters = self.counters + len(ns) * step
        return [o.reshape(self.num_seeds, *s) for o, s in zip(out.split(ns, dim=1), shapes)]

    def _offsets(self, ns: tuple[int, ...]) -> torch.Tensor:
        """The per-draw index hashes ``j * golden`` of :meth:`bits` for draws of ``ns`` numbers, concatenated
        (constants: cached per ``ns``)."""
        cache = self.__dict__.setdefault("_offset_cache", {})
        if ns not in cache:
            cache[ns] = torch.cat([_mul32(torch.arange(n, device=self.device, dtype=torch.int64), _GOLDEN)
                                   for n in ns])
        return cache[ns]

    def uniform(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """Uniform floats in the open interval (0, 1)."""
        return uniform_from_bits(self.bits(shape), dtype)

    def normal(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """Standard normal floats: Box-Muller, both the cosine and the sine half of each uniform pair."""
        return normal_from_bits(self.bits(normal_bits_shape(shape)), shape, dtype)

    def randint(self, shape: tuple[int, ...], high: int) -> torch.Tensor:
        """Integers uniform in ``[0, high)`` (``high < 2**31``), int64."""
        _check_high(high)  # before drawing: a bad bound leaves the stream where it is
        return randint_from_bits(self.bits(shape), high)

    def bernoulli(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        """Booleans that are true with probability ``p`` (exact to 2**-32)."""
        return self.bits(shape) < int(round(p * _TWO_POW_32))


def uniform_from_bits(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """:meth:`SeedStreams.uniform` from the :meth:`SeedStreams.bits` it draws."""
    return (bits.to(torch.float64).add_(0.5).div_(_TWO_POW_32)).to(dtype)


def normal_bits_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The shape of the bits :meth:`SeedStreams.normal` draws for ``shape`` (one pair per two numbers)."""
    return (2, (math.prod(shape) + 1) // 2)


def normal_from_bits(bits: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """:meth:`SeedStreams.normal` from the bits it draws (shape ``(N, *normal_bits_shape(shape))``)."""
    n = math.prod(shape)
    u = uniform_from_bits(bits, torch.float64)
    r = torch.sqrt(-2.0 * torch.log(u[:, 0]))
    angle = (2.0 * math.pi) * u[:, 1]
    z = torch.cat([r * torch.cos(angle), r * torch.sin(angle)], dim=1)[:, :n]
    return z.to(dtype).reshape(bits.shape[0], *shape)


def randint_from_bits(bits: torch.Tensor, high: int) -> torch.Tensor:
    """:meth:`SeedStreams.randint` from the bits it draws."""
    _check_high(high)
    return (bits * high) >> 32


def _check_high(high: int) -> None:
    if not 0 < high < 2**31:
        raise ValueError(f"high must be in (0, 2**31), got {high}")
