"""The catalogue of registered suites (``minmax bench --suite NAME``): each suite's tasks, budgets and agents.

The suite schema (:class:`~minmax_envs.evaluation.suites.Task`, :class:`~minmax_envs.evaluation.suites.Suite`) and
the registry (:func:`~minmax_envs.evaluation.suites.register_suite`, :func:`~minmax_envs.evaluation.suites.get_suite`)
are in :mod:`minmax_envs.evaluation.suites`; this module registers the suites the project ships, on import of
:mod:`minmax_envs.evaluation`. A change to a suite's tasks that changes their numbers bumps its ``version``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from minmax_envs.evaluation.suites import DEFAULT_AGENTS, Suite, Task, get_suite, register_suite

_DIRAC = {"init_std": 0.5}  # theta0 = psi0 = 1 plus per-seed N(0, 0.5^2) offsets: seeds differ
_MOG_SMALL = {"hidden": 32, "batch_size": 64, "eval_samples": 500}
_MOG = {"hidden": 64, "batch_size": 128, "eval_samples": 2500}
_TWO_MODE_TARGET = {"metric": "mode_alignment", "higher_is_better": True, "target": 2.0,
                    "target_metric": "modes_recovered"}
_IMAGES_TINY = {"width": 8, "batch_size": 32, "eval_samples": 256, "classifier_epochs": 3}

_NK = {"regularizer": "nk", "reg_weight": 0.5}  # the regularizer of Nagarajan & Kolter (2017) with their eta


def _distance_task(name: str, env_id: str, steps: int, eval_every: int, env_kwargs: dict, description: str,
                   **extra: Any) -> Task:
    """A task whose metric is the distance to the game's unique equilibrium, solved below 0.1."""
    return Task(name, env_id, steps, eval_every, "distance", False, 0.1, env_kwargs, lr_range=(1e-2, 1.0),
                description=description, **extra)


register_suite(Suite(
    name="quick", version=1, budget=3, tune_seeds=8, eval_seeds=16,
    description="Small games, a few minutes on 2 CPU cores: the README's main job.",
    tasks=(
        _distance_task("dirac-wgan", "DiracGAN-v0", 300, 30, {"loss": "wgan", **_DIRAC},
                       "Dirac WGAN (Mescheder et al. 2018): converge to (0, 0)"),
        _distance_task("dirac-wgan-nk", "DiracGAN-v0", 300, 30, {"loss": "wgan", **_NK, **_DIRAC},
                       "Dirac WGAN with the NK regularizer (Nagarajan & Kolter 2017), eta = 0.5"),
        _distance_task("bilinear", "Bilinear-v0", 300, 30, {"n": 10},
                       "min_x max_y x^T A y + b^T x + c^T y, distance to equilibrium"),
        Task("two-mode-small", "TwoMode-v0", 500, 50, **_TWO_MODE_TARGET, env_kwargs={"d": 100},
             lr_range=(1e-2, 1.0), ratios=(0.5,),
             description='The two-mode problem of "Adam is no better than normalized SGD" at d = 100'),
        Task("mog-ring-small", "MoG-Ring-v0", 1000, 100, "modes_covered", True, 6.0, _MOG_SMALL,
             lr_range=(3e-4, 3e-2), description="8 Gaussians on a ring, small MLPs: cover at least 6 modes"),
    ),
))

register_suite(Suite(
    name="stability", version=1, budget=4, tune_seeds=8, eval_seeds=32,
    agents=("sgda", "nsgda", "adam", "extragradient"),
    description='Nagarajan & Kolter (2017), "Gradient descent GAN optimization is locally stable": simultaneous '
                "gradient play with and without the NK regularizer on the Dirac GAN, a bilinear game and a ring of "
                "Gaussians.",
    tasks=(
        _distance_task("dirac-gan", "DiracGAN-v0", 500, 25, {"loss": "gan", **_DIRAC},
                       "Dirac GAN, standard loss: outside the assumptions of Nagarajan & Kolter (2017), not locally "
                       "convergent (Mescheder et al. 2018)"),
        _distance_task("dirac-wgan", "DiracGAN-v0", 500, 25, {"loss": "wgan", **_DIRAC},
                       "Dirac WGAN: simultaneous gradient play spirals out"),
        _distance_task("dirac-wgan-nk", "DiracGAN-v0", 500, 25, {"loss": "wgan", **_NK, **_DIRAC},
                       "Dirac WGAN with the NK regularizer, eta = 0.5"),
        _distance_task("bilinear", "Bilinear-v0", 500, 25, {"n": 10},
                       "Bilinear game: SGDA diverges, extragradient converges"),
        _distance_task("bilinear-nk", "Bilinear-v0", 500, 25, {"n": 10, **_NK},
                       "Bilinear game with the NK regularizer"),
        Task("mog-ring", "MoG-Ring-v0", 2000, 200, "modes_covered", True, 8.0, _MOG,
             lr_range=(1e-4, 1e-1), description="8 Gaussians on a ring, standard GAN loss"),
        Task("mog-ring-nk", "MoG-Ring-v0", 2000, 200, "modes_covered", True, 8.0, {**_MOG, **_NK},
             lr_range=(1e-4, 1e-1), description="8 Gaussians on a ring with the NK regularizer"),
    ),
))

_QUICK = get_suite("quick")

register_suite(Suite(
    name="families", version=1, budget=3, tune_seeds=8, eval_seeds=16,
    description="The quick suite's games as instance families (docs/families.md): every agent tunes on train "
                "instances and is judged on 16 held-out seeds that play test instances, the same ones for every agent.",
    tasks=(
        _distance_task("dirac-wgan", "DiracGAN-v0", 300, 30, {}, "Dirac WGAN from a starting point drawn per seed",
                       family="dirac-wgan"),
        _distance_task("dirac-wgan-nk", "DiracGAN-v0", 300, 30, _NK,
                       "Dirac WGAN with the NK regularizer, eta = 0.5, from a starting point drawn per seed",
                       family="dirac-wgan"),
        _distance_task("dirac-r1", "DiracGAN-v0", 300, 30, {},
                       "Dirac GAN with the R1 penalty (Mescheder et al. 2018): weight per seed, loss per batch",
                       family="dirac-r1"),
        _distance_task("bilinear", "Bilinear-v0", 300, 30, {},
                       "Bilinear games: size per batch, conditioning per seed", family="bilinear-cond"),
        Task("two-mode-small", "TwoMode-v0", 500, 50, **_TWO_MODE_TARGET, lr_range=(1e-2, 1.0), ratios=(0.5,),
             description="The two-mode problem at d = 100: gamma per seed, data case and widths per batch",
             family="two-mode-small"),
        Task("mog-ring-small", "MoG-Ring-v0", 1000, 100, "modes_covered", True, 6.0, lr_range=(3e-4, 3e-2),
             description="Rings of 6, 8 or 10 Gaussians, radius and width per seed: cover at least 6 modes",
             family="mog-ring-small"),
    ),
))
register_suite(Suite(
    name="controllers", version=1, budget=3, tune_seeds=8, eval_seeds=32, agents=("sgda", "nsgda"),
    description="Learned step-size controllers (baselines/train_controller.py, agent learned:PATH) against SGDA "
                "and nSGDA with tuned constant step sizes, on the games they are trained on.",
    tasks=(_QUICK.task("two-mode-small"), _QUICK.task("mog-ring-small")),
))

register_suite(Suite(
    name="two-mode", version=1, budget=15, tune_seeds=64, eval_seeds=128, agents=("sgda", "nsgda", "adam"),
    description='"Adam is no better than normalized SGD", Theorems 4.1 / 4.2: does the generator learn each mode '
                'in a separate neuron?',
    tasks=(
        Task("correlated-modes", "TwoMode-v0", 1000, 100, **_TWO_MODE_TARGET,
             env_kwargs={"d": 1000, "case": "correlated_modes"}, lr_range=(1e-3, 1.0), ratios=(1.0, 0.4, 0.1),
             description="Case 1: <u1, u2> = gamma, d = 1000, m_D = m_G = 5 (Figure 5)"),
        Task("correlated-coefficients", "TwoMode-v0", 1000, 100, **_TWO_MODE_TARGET,
             env_kwargs={"d": 1000, "case": "correlated_coefficients"}, lr_range=(1e-3, 1.0),
             ratios=(1.0, 0.4, 0.1), description="Case 2: orthogonal modes, P[s1 = s2 = 1] = gamma"),
    ),
))

register_suite(Suite(
    name="images-tiny", version=1, budget=3, tune_seeds=1, eval_seeds=2, agents=("adam", "adalr", "nsgda", "sgda"),
    description="CPU-sized image GANs on scikit-learn's digits (offline); success: the classifier Frechet "
                "distance falls below 400 (about 560 at initialization).",
    tasks=(
        Task("digits-dcgan", "Digits-DCGAN-v0", 600, 100, "classifier_fd", False, 400.0, _IMAGES_TINY,
             lr_range=(1e-4, 1e-2), description="DCGAN, width 8, 16x16 digits"),
        Task("digits-resnet-wgangp", "Digits-ResNetWGANGP-v0", 600, 100, "classifier_fd", False, 400.0,
             {**_IMAGES_TINY, "n_critic": 1}, lr_range=(1e-4, 1e-2), ratios=(0.1,),
             description="ResNet WGAN-GP, width 8, 16x16 digits, one critic step per generator step"),
    ),
))

register_suite(Suite(
    name="paper", version=1, budget=3, tune_seeds=1, eval_seeds=3, agents=("adam", "adalr", "nsgda", "sgda"),
    device="cuda", description='The image setting of "Adam is no better than normalized SGD": CIFAR-10 at 32x32, for '
                              'a GPU and the local dataset.',
    tasks=(
        Task("cifar10-resnet-wgangp", "CIFAR10-ResNetWGANGP-v0", 100_000, 5_000, "classifier_fd", False, 30.0,
             {"n_critic": 5}, lr_range=(2e-5, 2e-3), ratios=(0.1,), schedule="linear_decay",
             description="ResNet WGAN-GP (Gidel et al. 2019), batch 64, n_critic 5"),
        Task("cifar10-dcgan", "CIFAR10-DCGAN-v0", 100_000, 5_000, "classifier_fd", False, 30.0, {},
             lr_range=(2e-5, 2e-3), ratios=(1.0,), schedule="linear_decay",
             description="DCGAN, standard loss, batch 64"),
    ),
))

# --- the papers' own settings --------------------------------------------------------------------------------------

# Nagarajan & Kolter's Gaussian experiment as their public code sets it (see MixtureOfGaussians' docstring), and
# the Adam both players use there (lr 1e-4, beta1 0.5, eps 1e-8, beta2 0.999), torch's own implementation.
NK_ADAM = "torch:torch.optim.Adam?betas=[0.5,0.999]"
_NK_MOG = {"z_dim": 256, "hidden": 128, "layers": 2, "d_layers": 1, "input_scale": 0.25, "init": "orthogonal",
           "init_gain": 0.8, "update": "alternating", "batch_size": 512, "eval_samples": 2500}
# MNIST at 16x16 with a width-8 DCGAN: the regularized gradient play of the paper is simultaneous.
_NK_MNIST = {"resolution": 16, "width": 8, "batch_size": 64, "eval_samples": 500, "classifier_epochs": 3,
             "update": "simultaneous"}


def _nk_pair(name: str, env_id: str, steps: int, eval_every: int, env_kwargs: dict, lr: float, metric: str,
             higher: bool, target: float, description: str) -> tuple[Task, Task]:
    """A task in its paper's fixed setting (one step size, no tuning) and its twin with the NK regularizer."""
    def task(suffix: str, extra: dict, what: str) -> Task:
        return Task(name + suffix, env_id, steps, eval_every, metric, higher, target, {**env_kwargs, **extra},
                    lr_range=(lr, lr), description=f"{description}, {what}")
    return task("", {}, "plain gradient play"), task("-nk", _NK, "NK regularizer, eta = 0.5")


register_suite(Suite(
    name="nk-mog", version=1, budget=1, tune_seeds=1, eval_seeds=16, seed_block=16, agents=(NK_ADAM,),
    description='Nagarajan & Kolter (2017), "Gradient descent GAN optimization is locally stable", in their own '
                "settings: the 8-Gaussian ring of their public code (Adam 1e-4, alternating updates, 7,500 of their "
                "up to 100k iterations: what about 45 minutes on 2 CPU cores allow) and MNIST digits at 16x16, each "
                "with and without the regularizer, no tuning.",
    tasks=(*_nk_pair("ring", "MoG-Ring-v0", 7500, 500, _NK_MOG, 1e-4, "modes_covered", True, 8.0,
                     "8 Gaussians on a ring, N&K's networks and Adam"),
           *_nk_pair("mnist-dcgan", "MNIST-DCGAN-v0", 2000, 200, _NK_MNIST, 2e-4, "classifier_fd", False, 150.0,
                     "MNIST 16x16, DCGAN width 8, Adam 2e-4 (Radford et al.), simultaneous updates")),
))

_IMAGES_CPU = {"width": 16, "eval_samples": 500, "classifier_epochs": 3}


def _digits_task(batch_size: int, description: str, agents: tuple[str, ...] | None = None) -> Task:
    suffix = "" if batch_size == 64 else f"-b{batch_size}"
    return Task(f"digits-dcgan{suffix}", "Digits-DCGAN-v0", 2000, 200, "classifier_fd", False, 300.0,
                {**_IMAGES_CPU, "batch_size": batch_size}, lr_range=(1e-4, 1e-1), schedule="linear_decay",
                description=description, agents=agents)


# Version 1 searched 1e-4..1e-2 (3 points): the normalized agents, Adam and AdaLR chose its top edge, 1e-2, and
# g- and l-nSGDA were still improving there; version 2 searches 1e-4..1e-1 (4 points).
register_suite(Suite(
    name="images-cpu", version=2, budget=4, tune_seeds=1, eval_seeds=8,
    agents=("sgdm", "nsgda-layer", "nsgda", "adam", "adalr", "adadir"),
    description='The image claims of "Adam is no better than normalized SGD" at CPU scale: a width-16 DCGAN on '
                "16x16 digits, step sizes decayed linearly, an equal tuning budget, 8 held-out seeds; the batch-size "
                "tasks (16, 128) are played by sgdm and nsgda only (Figure 3's trend).",
    tasks=(_digits_task(64, "DCGAN width 16, 16x16 digits, batch 64"),
           _digits_task(16, "the same at batch 16 (Figure 3)", ("sgdm", "nsgda")),
           _digits_task(128, "the same at batch 128 (Figure 3)", ("sgdm", "nsgda"))),
))

# --- balanced updates ----------------------------------------------------------------------------------------------

#: The learned balance controllers of the suite ``balance`` (baselines/train_controller.py --action balance), one per
#: two-mode case, each played on the task it was trained on; shipped in the package (``learned:pkg:NAME``).
BALANCE_CONTROLLERS = {case: f"learned:pkg:balance-{case}" for case in ("correlated-modes", "correlated-coefficients")}
_PACED = ("sgda", "nsgda", "adam", "balanced:sgda?ratio=tuned", "balanced:sgda?ratio=tuned&anchor=generator",
          "balanced:sgda?ratio=tuned&anchor=discriminator", "balanced:sgda?ratio=1", "balanced:adam?ratio=tuned",
          "balanced:sgda?ratio=tuned&anchor=fixed")


def _two_mode_section4(case: str, description: str) -> Task:
    """Section 4's setting of "Adam is no better than normalized SGD" with Theorem 4.2's widths at d = 1000. The
    step sizes span six decades: SGDA's update, balanced or not, has the size of the gradient, tiny at the
    initialization, and needs far larger step sizes than the normalized agents to move at all."""
    name = case.replace("_", "-")
    return Task(name, "TwoMode-v0", 3000, 300, **_TWO_MODE_TARGET,
                env_kwargs={"d": 1000, "m_d": 7, "m_g": 13, "case": case}, lr_range=(1e-3, 1e3),
                ratios=(1.0, 0.4, 0.1), description=description, agents=(*_PACED, BALANCE_CONTROLLERS[name]))


register_suite(Suite(
    name="balance", version=1, budget=15, tune_seeds=8, eval_seeds=64,
    agents=(*_PACED, *BALANCE_CONTROLLERS.values()),
    description='Does holding the players\' pace fixed explain normalized SGDA ("Adam is no better than normalized '
                'SGD": normalization "forces the discriminator and generator to be updated at the same pace")? '
                "SGDA, nSGDA and Adam against SGDA and Adam held at a pace ||u_D|| / ||u_G|| (agents.balanced: the "
                "pace tuned as the step-size ratio, or 1; three anchors; and the size fixed too, which is nSGDA), "
                "and a learned controller of the pace and the scale.",
    tasks=(
        _two_mode_section4("correlated_modes", "Case 1 (<u1, u2> = gamma), d = 1000, m_D = 7, m_G = 13"),
        _two_mode_section4("correlated_coefficients", "Case 2 (P[s1 = s2 = 1] = gamma), d = 1000, m_D = 7, m_G = 13"),
        Task("dirac-wgan", "DiracGAN-v0", 500, 25, "distance", False, 0.1, {"loss": "wgan", **_DIRAC},
             lr_range=(1e-2, 1.0), description="Dirac WGAN: simultaneous gradient play spirals out", agents=_PACED),
        Task("mog-ring", "MoG-Ring-v0", 2000, 200, "modes_covered", True, 8.0, _MOG, lr_range=(1e-4, 10.0),
             ratios=(1.0, 0.5, 0.25), description="8 Gaussians on a ring, standard GAN loss", agents=_PACED),
    ),
))

# --- learned controllers on instance families ----------------------------------------------------------------------

#: The base direction of each learned controller of the suite ``learned-controllers`` (baselines/ppo_step_size.py),
#: by task, and its action: the steps act on this agent's unit updates (docs/controllers.md says why each).
LEARNED_BASES = {"dirac-wgan": ("sgda", "step_sizes"), "dirac-wgan-nk": ("sgda", "step_sizes"),
                 "bilinear": ("sgda", "step_sizes"), "two-mode-small": ("nsgda", "step_sizes"),
                 "mog-ring-small": ("adam", "step_sizes"), "section4-correlated-modes": ("nsgda", "balance"),
                 "section4-correlated-coefficients": ("nsgda", "balance")}
#: The learned controller of each task of ``learned-controllers``, shipped as package data, played on its task only.
LEARNED_CONTROLLERS = {name: f"learned:pkg:{name}" for name in LEARNED_BASES}
_FIXED_SIZE = "balanced:sgda?ratio=tuned&anchor=fixed"
_FAMILIES = get_suite("families")


def _section4_family_task(case: str) -> Task:
    """Section 4's two-mode problem (d = 1000, m_D = 7, m_G = 13) as its instance family (gamma per seed), with a
    step-size grid around the pace and size nSGDA is tuned to in the suite ``balance`` (lr_d 0.0316, ratio 0.4)."""
    name = f"section4-{case.replace('_', '-')}"
    return Task(name, "TwoMode-v0", 3000, 300, **_TWO_MODE_TARGET, lr_range=(10**-2.5, 10**-0.5), ratios=(0.4,),
                description=f"Section 4's two-mode problem ({case.replace('_', ' ')}), d = 1000, m_D = 7, m_G = 13, "
                            "gamma per seed", family=f"two-mode-section4-{case.replace('_', '-')}",
                agents=(*DEFAULT_AGENTS, _FIXED_SIZE, LEARNED_CONTROLLERS[name]))


register_suite(Suite(
    name="learned-controllers", version=1, budget=3, tune_seeds=8, eval_seeds=16,
    agents=(*DEFAULT_AGENTS, _FIXED_SIZE, *LEARNED_CONTROLLERS.values()),
    description="Step-size and balance controllers learned with baselines/ppo_step_size.py on the train instances of "
                "each task's family, judged on held-out seeds playing its test instances against the tuned agents "
                "(docs/controllers.md): the families suite's five quick-suite tasks and Section 4's two-mode cases.",
    tasks=(*(replace(_FAMILIES.task(name), agents=(*DEFAULT_AGENTS, LEARNED_CONTROLLERS[name]))
             for name in ("dirac-wgan", "dirac-wgan-nk", "bilinear", "two-mode-small", "mog-ring-small")),
           _section4_family_task("correlated_modes"), _section4_family_task("correlated_coefficients")),
))
