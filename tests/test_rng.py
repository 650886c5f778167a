import pickle

import pytest
import torch

from minmax_envs._rng import SeedStreams, hash32


def _draws(rng: SeedStreams):
    return [rng.normal((3, 5), torch.float64), rng.uniform((7,), torch.float32), rng.randint((4,), 10),
            rng.bernoulli((6,), 0.3), rng.bits((2, 2))]


@pytest.mark.parametrize("base", [0, 12345, 2**40 + 7])
def test_batched_slot_equals_single_stream(base):
    n = 5
    batched = _draws(SeedStreams(base + torch.arange(n, dtype=torch.int64)))
    for i in range(n):
        single = _draws(SeedStreams(torch.tensor([base + i])))
        for b, s in zip(batched, single):
            assert torch.equal(b[i], s[0])


def test_streams_differ_across_seeds_salts_and_draws():
    r = SeedStreams(torch.arange(2, dtype=torch.int64))
    a, b = r.uniform((100,), torch.float64), r.uniform((100,), torch.float64)
    assert not torch.equal(a[0], a[1]) and not torch.equal(a, b)
    other = SeedStreams(torch.arange(2, dtype=torch.int64), salt=1).uniform((100,), torch.float64)
    assert not torch.equal(a, other)


def test_advance_mask_moves_only_selected_counters():
    r = SeedStreams(torch.arange(3, dtype=torch.int64))
    with r.advancing(torch.tensor([True, False, True])):
        first = r.uniform((4,), torch.float64)
        second = r.uniform((4,), torch.float64)
    assert torch.equal(r.counters, torch.tensor([2, 0, 2]))
    r.uniform((4,), torch.float64)  # outside the block every slot advances again
    assert torch.equal(r.counters, torch.tensor([3, 1, 3]))
    assert torch.equal(first[1], second[1]) and not torch.equal(first[0], second[0])


def test_reseed_restarts_the_selected_slots():
    r = SeedStreams(torch.tensor([4, 5, 6]))
    r.uniform((3,), torch.float64)
    r.reseed(torch.tensor([False, True, False]), torch.tensor([0, 9, 0]))
    assert torch.equal(r.counters, torch.tensor([1, 0, 1]))
    fresh = SeedStreams(torch.tensor([9])).uniform((3,), torch.float64)
    assert torch.equal(r.uniform((3,), torch.float64)[1], fresh[0])


def test_distributions_have_the_right_moments():
    r = SeedStreams(torch.arange(8, dtype=torch.int64))
    x = r.normal((50_000,), torch.float64)
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01
    assert abs((x**4).mean().item() - 3) < 0.05
    u = r.uniform((50_000,), torch.float64)
    assert 0 < u.min().item() and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.005
    k = r.randint((50_000,), 7)
    counts = torch.bincount(k.flatten(), minlength=7).double() / k.numel()
    assert k.min() == 0 and k.max() == 6 and (counts - 1 / 7).abs().max() < 0.005
    assert abs(r.bernoulli((50_000,), 0.3).double().mean().item() - 0.3) < 0.005


def test_hash_is_a_32_bit_bijection_on_a_sample():
    x = torch.arange(0, 2**32, 2**32 // 100_003, dtype=torch.int64)
    h = hash32(x)
    assert h.min() >= 0 and h.max() < 2**32 and h.unique().numel() == x.numel()


def test_bad_seeds_and_bounds_raise():
    with pytest.raises(ValueError, match="int64"):
        SeedStreams(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="high"):
        SeedStreams(torch.tensor([1])).randint((2,), 0)


def _h(x: int) -> int:
    """lowbias32 in plain Python integers: the reference the tensor code must equal bit for bit."""
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    return x ^ (x >> 16)


def _reference_bits(seed: int, salt: int, counter: int, n: int) -> list[int]:
    m, golden = 0xFFFFFFFF, 0x9E3779B9
    k0 = _h((seed & m) ^ _h(salt))
    k1 = _h(((seed >> 32) & m) ^ _h(k0 ^ golden))
    base = _h(k0 ^ _h(counter & m))
    return [_h(_h((base + j * golden) & m) ^ k1) for j in range(n)]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_streams_equal_their_pure_python_definition(device):
    seeds = [0, 1, 2**31 - 1, 2**31, 2**32 + 5, 2**63 - 1]
    r = SeedStreams(torch.tensor(seeds, device=device), salt=0x5EED)
    n = 37  # odd: the vectorized kernels' scalar tails too
    first, second = r.bits((n,)), r.bits((n,))
    r.counters = r.counters + 2**32 + 3  # counters hash by their low 32 bits
    third = r.bits((n,))
    for i, s in enumerate(seeds):
        assert first[i].tolist() == _reference_bits(s, 0x5EED, 0, n)
        assert second[i].tolist() == _reference_bits(s, 0x5EED, 1, n)
        assert third[i].tolist() == _reference_bits(s, 0x5EED, 2**32 + 5, n)
    x = torch.tensor([0, 1, 2**31 - 1, 2**31, 2**32 - 1], device=device)
    assert hash32(x).tolist() == [_h(v) for v in x.tolist()]


def test_streams_pickled_mid_stream_draw_the_same_numbers():
    rng = SeedStreams(torch.tensor([3, 9, 2**40], dtype=torch.int64), salt=5)
    rng.normal((4,), torch.float64)
    rng.bits_many([(2,), (3, 2)])  # fills the key and offset caches, which travel along
    with rng.advancing(torch.tensor([True, False, True])):
        rng.bits((2,))
    copy = pickle.loads(pickle.dumps(rng))
    assert torch.equal(copy.counters, rng.counters) and torch.equal(copy.keys, rng.keys)
    for draw in (lambda r: r.bits_many([(5,), (2, 2)]), lambda r: [r.uniform((3,), torch.float32)],
                 lambda r: [r.randint((6,), 7)]):
        for a, b in zip(draw(copy), draw(rng)):
            assert torch.equal(a, b)
