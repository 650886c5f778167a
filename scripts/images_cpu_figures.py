"""Figures 1 and 3 of "Adam is no better than normalized SGD" on the suite ``images-cpu``'s stored records.

    python scripts/images_cpu_figures.py runs/images-cpu docs/reproduction/images-cpu

* **Figure 1**, the gradient ratio $\\lVert \\nabla G_t \\rVert / \\lVert \\nabla G_0 \\rVert + \\lVert \\nabla D_t
  \\rVert / \\lVert \\nabla D_0 \\rVert$ (norms summed over each player's tensors) over training, and the ratio of the
  discriminator's to the generator's gradient norm, for the agents ``--agents`` (default SGDA with momentum,
  Adam and g-nSGDA), each at the step sizes the suite tuned for it on ``digits-dcgan``: held-out seeds
  ``0 .. --seeds - 1`` replayed with ``protocol.replay(..., diagnostics_every=--every)`` (the replay's final
  classifier FD is checked against the stored record). Writes ``OUT/plots/figure1_gradient_ratio.png``.
* **Figure 3**, the gap between SGDA with momentum and g-nSGDA at batch sizes 16, 64 and 128: the median final
  classifier FD of each (95% bootstrap CI, as the leaderboard computes it) on the held-out seeds, from the
  records alone. Writes ``OUT/plots/figure3_batch_size.png``.

Both tables go to ``OUT/figures.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minmax_envs.evaluation import get_suite  # noqa: E402
from minmax_envs.evaluation.protocol import Unit, replay  # noqa: E402
from minmax_envs.evaluation.stats import bootstrap_ci, final_value  # noqa: E402
from scripts.figure_cli import figure_cli  # noqa: E402

BATCHES = (("digits-dcgan-b16", 16), ("digits-dcgan", 64), ("digits-dcgan-b128", 128))


def evaluated(records: list[dict], task: str, agent: str) -> list[dict]:
    return sorted((r for r in records if r["task"] == task and r["agent"] == agent and r["phase"] == "eval"),
                  key=lambda r: r["seed"])


def figure1(suite, records, agents, seeds, every, plt, out: Path) -> list[str]:
    task = suite.task("digits-dcgan")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    lines = ["## Figure 1: gradient ratio on digits-dcgan", "",
             f"Held-out seeds 0..{seeds - 1} replayed at each agent's tuned step sizes; median over the seeds at "
             "the iterations shown.", "",
             "| agent | lr_d | iteration | gradient ratio | grad D / grad G | replayed FD = stored |",
             "|---|---|---|---|---|---|"]
    for agent in agents:
        stored = evaluated(records, task.name, agent)[:seeds]
        unit = Unit.of_records(suite, stored)
        config = unit.config
        ratio, d_over_g, same = [], [], []
        for r in stored:  # image games run one seed per env: a block is a seed
            res = replay(unit, r["seed"], diagnostics_every=every)
            d = res.diagnostics
            ratio.append(d["game/grad_ratio"][:, 0].double().numpy())
            d_over_g.append((d["game/grad_norm/discriminator"] / d["game/grad_norm/generator"])[:, 0].double().numpy())
            same.append(abs(float(res.metrics["classifier_fd"][0]) - r["value"]) <= 1e-4 * abs(r["value"]))
        steps = np.asarray(res.diagnostic_steps)
        for ax, values in zip(axes, (np.asarray(ratio), np.asarray(d_over_g))):
            q1, med, q3 = np.percentile(values, [25, 50, 75], axis=0)
            (line,) = ax.plot(steps, med, label=f"{agent} (lr {config['lr_d']:.3g})")
            ax.fill_between(steps, q1, q3, color=line.get_color(), alpha=0.2, linewidth=0)
        med_r, med_q = np.median(ratio, axis=0), np.median(d_over_g, axis=0)
        for t in sorted({steps[0], *steps[len(steps) // 4 - 1::len(steps) // 4]}):
            j = int(np.searchsorted(steps, t))
            lines.append(f"| {agent} | {config['lr_d']:.3g} | {t} | {med_r[j]:.3g} | {med_q[j]:.3g} | "
                         f"{sum(same)}/{len(same)} |")
    axes[0].set_ylabel("|grad G_t|/|grad G_0| + |grad D_t|/|grad D_0|")
    axes[1].set_ylabel("|grad D_t| / |grad G_t|")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Figure 1 at CPU scale: DCGAN width 16 on 16x16 digits (bands: interquartile range)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "plots" / "figure1_gradient_ratio.png", dpi=120)
    plt.close(fig)
    return lines


def figure3(records, plt, out: Path) -> list[str]:
    lines = ["## Figure 3: the SGDA-nSGDA gap against the batch size", "",
             "Median final classifier FD on the held-out seeds [95% bootstrap CI].", "",
             "| batch | sgdm | nsgda | gap (sgdm - nsgda) |", "|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for agent, marker in (("sgdm", "o"), ("nsgda", "s")):
        meds, los, his = [], [], []
        for task, _ in BATCHES:
            values = np.asarray([final_value(r) for r in evaluated(records, task, agent)], dtype=float)
            lo, hi = bootstrap_ci(values, np.median)
            meds.append(float(np.median(values)))
            los.append(lo)
            his.append(hi)
        sizes = [b for _, b in BATCHES]
        ax.errorbar(sizes, meds, yerr=[np.subtract(meds, los), np.subtract(his, meds)], marker=marker, capsize=3,
                    label=agent)
        rows[agent] = list(zip(meds, los, his))
    for i, (_, b) in enumerate(BATCHES):
        (sm, sl, sh), (nm, nl, nh) = rows["sgdm"][i], rows["nsgda"][i]
        lines.append(f"| {b} | {sm:.4g} [{sl:.4g}, {sh:.4g}] | {nm:.4g} [{nl:.4g}, {nh:.4g}] | {sm - nm:.4g} |")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("final classifier FD (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "plots" / "figure3_batch_size.png", dpi=120)
    plt.close(fig)
    return lines


def main(argv: list[str] | None = None) -> None:
    def options(p):
        p.add_argument("--agents", default="sgdm,adam,nsgda", help="agents of Figure 1")
        p.add_argument("--seeds", type=int, default=4, help="held-out seeds replayed for Figure 1")
        p.add_argument("--every", type=int, default=20, help="iterations between Figure 1's points")
    args, plt, records = figure_cli(__doc__, argv, "figures.md", options)
    lines = ["# images-cpu: Figures 1 and 3", "",
             f"Made by `python scripts/images_cpu_figures.py {args.runs} {args.out} --agents {args.agents} --seeds "
             f"{args.seeds} --every {args.every}`.", ""]
    lines += figure3(records, plt, args.out) + [""]
    lines += figure1(get_suite("images-cpu"), records, args.agents.split(","), args.seeds, args.every, plt, args.out)
    (args.out / "figures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
