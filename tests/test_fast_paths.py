"""Every fast path equals the reference it stands for, step for step, on batched ``(N, ...)`` tensors of a few
shapes, both scopes where there are scopes: the fused pure paths of :mod:`agents.fused` (the named optimizers)
against their chains of :mod:`agents.transforms`, and the in-place agents of :mod:`agents.inplace` against
``in_place(<pure agent>)``. Exactly where the arithmetic is the same; to a tight tolerance, said why, where a fast
path rounds differently (a fused multiply-add, a folded product, torch's fused Adam kernel)."""

import pytest
import torch

import agents
from agents import fused, inplace
from agents import transforms as ref
from agents.schedules import linear_decay

STEPS = 6
SHAPES = {
    "mlp": {"w": (5, 3), "b": (7,), "s": ()},
    "conv": {"k": (2, 3, 4), "v": (6,)},
}
N = (1, 4)
DTYPES = (torch.float64, torch.float32)
#: rounding-level tolerance (a few units in the last place, compounded over STEPS steps through the state)
TOL = {torch.float64: {"rtol": 1e-12, "atol": 1e-14}, torch.float32: {"rtol": 2e-5, "atol": 1e-6}}


def _tensors(shapes, n, dtype, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return {k: scale * torch.randn((n, *s), generator=gen, dtype=torch.float64).to(dtype) for k, s in shapes.items()}


def _strided(d):
    """The same values in non-contiguous tensors (torch's fused Adam kernel does not take them)."""
    out = {}
    for k, v in d.items():
        wide = torch.zeros((*v.shape, 2), dtype=v.dtype)
        wide[..., 0] = v
        out[k] = wide[..., 0]
    return out


def _leaves(tree):
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _leaves(tree[k])]
    if isinstance(tree, (tuple, list)):
        return [x for v in tree for x in _leaves(v)]
    return []


def _compare(got, want, exact, dtype):
    a, b = _leaves(got), _leaves(want)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if exact:
            assert torch.equal(x, y)
        else:
            torch.testing.assert_close(x, y, **TOL[dtype])


def _same_structure(a, b):
    """The same state: NamedTuple for NamedTuple, tensor for tensor; a named chain state (``AdamState``...) for the
    chain's plain tuple of the same parts."""
    if isinstance(a, agents.ChainState) and type(b) is tuple:
        a = tuple(a)
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_structure(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_structure(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def _pure_run(fast, reference, params, grads_of, exact, dtype):
    s_f, s_r = fast.init(params), reference.init(params)
    _same_structure(s_f, s_r)  # the same state, NamedTuple for NamedTuple, before the first step
    assert fast.evaluations == reference.evaluations
    for t in range(STEPS):
        g = grads_of(t)
        u_f, s_f = fast.update(g, s_f, params)
        u_r, s_r = reference.update(g, s_r, params)
        assert list(u_f) == list(u_r)
        _compare(u_f, u_r, exact, dtype)
        _compare(s_f, s_r, exact, dtype)
        params = {k: v + u_r[k] for k, v in params.items()}


B1, B2, EPS, LR = 0.5, 0.9, 1e-8, 1e-2

# (name, fast, reference, exact): fast and reference are functions of the scope (None where there is none).
PURE = [
    # torch's fused Adam kernel rounds in its own (vectorized) order: ~1 ulp from the foreach reference per step
    ("scale_by_adam", lambda sc: fused.scale_by_adam(B1, B2, EPS), lambda sc: ref.scale_by_adam(B1, B2, EPS), False),
    # the same kernel, the step size inside it instead of a second product
    ("adam", lambda sc: agents.adam(LR, (B1, B2), EPS),
     lambda sc: agents.chain(ref.scale_by_adam(B1, B2, EPS), ref.scale_by_learning_rate(LR)), False),
    ("adam-schedule", lambda sc: agents.adam(linear_decay(LR, 4), (B1, B2), EPS),
     lambda sc: agents.chain(ref.scale_by_adam(B1, B2, EPS), ref.scale_by_learning_rate(linear_decay(LR, 4))), False),
    # -lr folded into 1 / ||g||: g * (-lr / ||g||) rounds once where (g / ||g||) * -lr rounds twice
    ("nsgda", lambda sc: agents.nsgda(LR, scope=sc),
     lambda sc: agents.chain(ref.normalize(sc), ref.scale_by_learning_rate(LR)), False),
    # and trace's m = mu m + g in the reference: the same kernels in both (the chain's trace is the reference's)
    ("nsgda-momentum", lambda sc: agents.nsgda(linear_decay(LR, 4), momentum=0.9, scope=sc),
     lambda sc: agents.chain(ref.trace(0.9), ref.normalize(sc), ref.scale_by_learning_rate(linear_decay(LR, 4))),
     False),
    # the momentum buffer in one pass (m = g + b1 m: a fused multiply-add) and the grafting factor put on M
    ("adalr", lambda sc: agents.adalr(LR, (B1, B2), EPS, scope=sc),
     lambda sc: ref.graft(agents.adam(LR, (B1, B2), EPS),
                          agents.chain(ref.trace(B1), ref.scale_by_learning_rate(1.0)), sc, EPS), False),
    # without momentum the factor algebra at unit step is exact: (-M) f == M (-f), ||-M|| == ||M||
    ("adalr-no-momentum", lambda sc: agents.adalr(LR, (0.0, B2), EPS, scope=sc),
     lambda sc: ref.graft(agents.adam(LR, (0.0, B2), EPS), agents.chain(ref.scale_by_learning_rate(1.0)), sc, EPS),
     True),
    # Adam's step rescaled in place instead of into a new tensor: the same products
    ("adadir", lambda sc: agents.adadir(LR, (B1, B2), EPS, scope=sc),
     lambda sc: ref.graft(agents.sgda(LR, momentum=B1), agents.adam(1.0, (B1, B2), EPS), sc, EPS), True),
    ("graft_fresh", lambda sc: fused.graft_fresh(agents.adam(LR), agents.adam(1.0, (0.9, 0.99)), sc),
     lambda sc: ref.graft(agents.adam(LR), agents.adam(1.0, (0.9, 0.99)), sc), True),
]
SCOPED = {"nsgda", "nsgda-momentum", "adalr", "adalr-no-momentum", "adadir", "graft_fresh"}


def _cases(table, scoped):
    """One case per row of ``table`` and, for the names in ``scoped``, per scope."""
    for name, fast, reference, exact in table:
        for scope in (("layer", "global") if name in scoped else (None,)):
            yield pytest.param(fast, reference, scope, exact, id=f"{name}-{scope}" if scope else name)


@pytest.mark.parametrize("fast, reference, scope, exact", list(_cases(PURE, SCOPED)))
@pytest.mark.parametrize("shapes", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("n", N)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_a_fused_path_equals_the_chain_it_stands_for(fast, reference, scope, exact, shapes, n, dtype):
    params = _tensors(shapes, n, dtype, 0)
    _pure_run(fast(scope), reference(scope), params, lambda t: _tensors(shapes, n, dtype, 100 + t), exact, dtype)


@pytest.mark.parametrize("name, fast, reference", [
    ("scale_by_adam", lambda: fused.scale_by_adam(B1, B2, EPS), lambda: ref.scale_by_adam(B1, B2, EPS)),
    ("adam", lambda: agents.adam(LR, (B1, B2), EPS),
     lambda: agents.chain(ref.scale_by_adam(B1, B2, EPS), ref.scale_by_learning_rate(LR))),
])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_off_the_fused_kernel_adam_is_the_reference_bit_for_bit(name, fast, reference, dtype):
    # non-contiguous gradients: torch's kernel does not run, and the fast path is the reference's foreach kernels
    shapes = SHAPES["mlp"]
    params = _tensors(shapes, 4, dtype, 0)
    _pure_run(fast(), reference(), params, lambda t: _strided(_tensors(shapes, 4, dtype, 100 + t)), True, dtype)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_nsgda_keeps_the_two_products_apart_where_the_folded_one_leaves_the_normal_range(scope, dtype):
    # lr / ||g|| overflows: the fast path takes the reference's route, (g / ||g||) * -lr, bit for bit
    lr = float(torch.finfo(dtype).max) / 10
    shapes = SHAPES["conv"]
    params = _tensors(shapes, 4, dtype, 0)
    _pure_run(agents.nsgda(lr, scope=scope), agents.chain(ref.normalize(scope), ref.scale_by_learning_rate(lr)),
              params, lambda t: _tensors(shapes, 4, dtype, 100 + t, scale=1e-3), True, dtype)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_adalr_takes_the_literal_route_where_its_factor_is_not_a_normal_float(scope):
    # a step size so small that ||u_M|| / (||M|| + eps) is subnormal: u_D = -M is written and rescaled as the
    # reference does (no momentum, so that the buffers are the same too): bit for bit
    dtype, shapes = torch.float64, SHAPES["mlp"]
    lr = 1e-310
    params = _tensors(shapes, 4, dtype, 0)
    fast = agents.adalr(lr, (0.0, B2), EPS, scope=scope)
    assert fused.momentum_graft_factors(list(shapes), *[{k: torch.full((4,), x, dtype=dtype) for k in shapes}
                                                        for x in (1e-310, 1.0)], 1.0, EPS) is None
    reference = ref.graft(agents.adam(lr, (0.0, B2), EPS), agents.chain(ref.scale_by_learning_rate(1.0)), scope, EPS)
    _pure_run(fast, reference, params, lambda t: _tensors(shapes, 4, dtype, 100 + t), True, dtype)


# --- in place ---------------------------------------------------------------------------------------------
# (name, in-place fast path, pure agent, exact): the in-place step against in_place(pure), which adds the pure
# update with one foreach kernel. Adam's kernel runs on the parameters themselves and rounds p + u as that addition
# does: bit for bit. The others add factor * direction in one pass (a fused multiply-add on CPUs with FMA: one
# rounding where the pure agent rounds twice), so they agree to rounding; test_inplace_agents.py checks them bit for
# bit under ATEN_CPU_CAPABILITY=default, where torch's kernels do not fuse.
IN_PLACE = [
    ("adam", lambda sc: inplace.adam(LR, (B1, B2), EPS), lambda sc: agents.adam(LR, (B1, B2), EPS), True),
    ("sgda", lambda sc: inplace.sgda(LR), lambda sc: agents.sgda(LR), False),
    ("sgda-momentum", lambda sc: inplace.sgda(linear_decay(LR, 4), 0.9, nesterov=True),
     lambda sc: agents.sgda(linear_decay(LR, 4), 0.9, nesterov=True), False),
    ("nsgda", lambda sc: inplace.nsgda(LR, 0.5, sc), lambda sc: agents.nsgda(LR, 0.5, sc), False),
    ("adalr", lambda sc: inplace.adalr(LR, (B1, B2), EPS, sc), lambda sc: agents.adalr(LR, (B1, B2), EPS, sc), False),
    ("adadir", lambda sc: inplace.adadir(LR, (B1, B2), EPS, sc), lambda sc: agents.adadir(LR, (B1, B2), EPS, sc),
     False),
]
IN_PLACE_SCOPED = {"nsgda", "adalr", "adadir"}


@pytest.mark.parametrize("fast, pure, scope, exact", list(_cases(IN_PLACE, IN_PLACE_SCOPED)))
@pytest.mark.parametrize("shapes", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("n", N)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_an_in_place_agent_equals_its_pure_agent_in_place(fast, pure, scope, exact, shapes, n, dtype):
    fast, reference = fast(scope), agents.in_place(pure(scope))
    p_f, p_r = _tensors(shapes, n, dtype, 0), _tensors(shapes, n, dtype, 0)
    s_f, s_r = fast.init(p_f), reference.init(p_r)
    _same_structure(s_f, s_r)
    for t in range(STEPS):
        g = _tensors(shapes, n, dtype, 100 + t)
        s_f = fast.step(g, s_f, p_f)
        s_r = reference.step(g, s_r, p_r)
        _compare(p_f, p_r, exact, dtype)
        _compare(s_f, s_r, exact, dtype)
