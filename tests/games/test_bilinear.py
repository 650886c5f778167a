import pytest
import torch

import agents
import minmax_envs


def test_equilibrium_is_a_zero_of_both_gradients():
    env = minmax_envs.make("Bilinear-v0", num_seeds=4, n=6, dtype=torch.float64)
    env.reset(seed=5)
    inst = env._instance
    svals = torch.linalg.svdvals(inst["A"])
    assert (svals >= 0.5 - 1e-12).all() and (svals <= 1.0 + 1e-12).all()
    params = {"generator": {"x": inst["x_star"]}, "discriminator": {"y": inst["y_star"]}}
    _, g = env.game.grads(params, inst, {"noise": torch.zeros(4, 2, 6, dtype=torch.float64)})
    assert g["generator"]["x"].abs().max() < 1e-12 and g["discriminator"]["y"].abs().max() < 1e-12


def test_simultaneous_sgda_moves_away_from_the_equilibrium():
    env = minmax_envs.make("Bilinear-v0", num_seeds=8, n=5, dtype=torch.float64)
    result = minmax_envs.run_episode(env, agents.sgda(0.05), steps=300, seed=0, eval_every=300)
    d0, d1 = result.trajectory[0][1]["distance"], result.metrics["distance"]
    assert (d1 > d0).all()


def test_gradient_noise_is_zero_mean_with_the_given_scale():
    env = minmax_envs.make("Bilinear-v0", num_seeds=2000, n=2, noise_std=0.5, offset_std=0.0,
                           dtype=torch.float64)
    obs, _ = env.reset(seed=0)
    exact, _ = env.game.grads(env.params, env._instance, {"noise": torch.zeros(2000, 2, 2, dtype=torch.float64)})
    _, g = env.game.grads(env.params, env._instance, env.game.sample(env._rng, env._instance))
    _, g0 = env.game.grads(env.params, env._instance, {"noise": torch.zeros(2000, 2, 2, dtype=torch.float64)})
    noise = g["generator"]["x"] - g0["generator"]["x"]
    assert abs(noise.mean().item()) < 0.03 and abs(noise.std().item() - 0.5) < 0.03


@pytest.mark.parametrize("kw, match", [({"n": 0}, "n must"), ({"sigma_min": 0.0}, "sigma_min"),
                                       ({"sigma_min": 2.0, "sigma_max": 1.0}, "sigma"),
                                       ({"noise_std": -1.0}, "noise_std")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        minmax_envs.make("Bilinear-v0", **kw)
