"""Draw the figure of the docs' home page: the Dirac WGAN played by SGDA, with and without the
Nagarajan-Kolter regularizer, from the registered env (docs/assets/home-dirac.png).

    python scripts/make_home_figure.py             # (re)draw docs/assets/home-dirac.png
    python scripts/make_home_figure.py --out F.png

Every seed starts at (theta, psi) = (1, 1); plain simultaneous gradient descent-ascent spirals away from the
equilibrium (0, 0), the NK-regularized field (``regularizer="nk"``, eta = 0.5) spirals into it
(Mescheder et al. 2018, Sec. 2; Nagarajan & Kolter 2017). Deterministic: no seed is drawn (``init_std = 0``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend choice
import torch  # noqa: E402

import agents  # noqa: E402
import minmax_envs  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "assets" / "home-dirac.png"
LR, STEPS = 0.1, 300


def trajectory(regularizer: str | None) -> tuple[list[float], list[float], float]:
    """``theta``, ``psi`` at every step of one seed, and the final distance to the equilibrium."""
    env = minmax_envs.make("DiracGAN-v0", num_seeds=1, loss="wgan", regularizer=regularizer,
                           reg_weight=0.5 if regularizer else None)
    r = minmax_envs.run_episode(env, agents.sgda(LR), steps=STEPS, seed=0, eval_every=1)
    theta = [float(m["theta"][0]) for _, m in r.trajectory]
    psi = [float(m["psi"][0]) for _, m in r.trajectory]
    return theta, psi, float(r.metrics["distance"][0])


def draw(out: Path) -> None:
    torch.set_num_threads(1)
    plt.rcParams.update({"svg.hashsalt": "minmax_envs", "font.size": 10})
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.0), sharex=True, sharey=True, constrained_layout=True)
    for ax, (reg, title, color) in zip(axes, ((None, "SGDA: cycles outward", "#c0392b"),
                                              ("nk", "SGDA + NK regularizer: converges", "#1f6fb2"))):
        theta, psi, dist = trajectory(reg)
        ax.plot(theta, psi, color=color, lw=1.4)
        ax.plot(theta[0], psi[0], "o", color="black", ms=5, label="start (1, 1)")
        ax.plot(theta[-1], psi[-1], "s", color=color, ms=5, label=f"step {STEPS}: distance {dist:.2g}")
        ax.plot(0, 0, "*", color="#2c9d4b", ms=12, label="equilibrium (0, 0)")
        ax.set_title(title)
        ax.set_xlabel(r"generator $\theta$")
        ax.axhline(0, color="0.85", lw=0.8, zorder=0)
        ax.axvline(0, color="0.85", lw=0.8, zorder=0)
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=8, frameon=False)
    axes[0].set_ylabel(r"discriminator $\psi$")
    fig.suptitle(f'DiracGAN-v0 (loss="wgan"), simultaneous SGDA, step size {LR}, {STEPS} steps', fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=OUT)
    draw(ap.parse_args().out)


if __name__ == "__main__":
    main()
