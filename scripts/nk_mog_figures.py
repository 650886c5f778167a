"""Figures of the suite ``nk-mog`` (Nagarajan & Kolter 2017, "Gradient descent GAN optimization is locally
stable", their Gaussian experiment): coverage and high-quality fraction over iterations, with and without the
regularizer, from the suite's stored records; and generator samples at several iterations, from replays.

    python scripts/nk_mog_figures.py runs/nk-mog docs/reproduction/nk-mog

Writes ``OUT/plots/nk_coverage.png`` (median and interquartile range over the held-out seeds of
``modes_covered`` and ``high_quality_fraction`` at every evaluation point), ``OUT/plots/nk_samples.png`` (500
samples of held-out seed 0 at the iterations ``--at``, each arm) and ``OUT/nk_figures.md`` (the numbers of both
figures). The samples come from replaying seed 0 alone (one seed per env, ``run_one``): the suite ran it in a
batch of 16, whose kernels may round differently, so a replay can drift from the stored episode; the table says
whether its final coverage equals the stored record's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minmax_envs.evaluation import get_suite, run_one  # noqa: E402
from minmax_envs.games.mog import mode_layout  # noqa: E402
from scripts.figure_cli import figure_cli  # noqa: E402

ARMS = (("ring", "Adam, no regularizer"), ("ring-nk", "Adam + NK regularizer (eta = 0.5)"))
METRICS = (("modes_covered", "modes covered (of 8)"), ("high_quality_fraction", "high-quality fraction"))


def curves(records: list[dict], task: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation steps and the ``(seeds, steps)`` values of ``metric`` on the held-out seeds of ``task``."""
    rs = sorted((r for r in records if r["task"] == task and r["phase"] == "eval"), key=lambda r: r["seed"])
    return np.asarray(rs[0]["curve"]["steps"]), np.asarray([r["curve"][metric] for r in rs], dtype=float)


def replay(suite, task_name: str, steps: int) -> tuple[np.ndarray, float]:
    """Samples ``(500, 2)`` of held-out seed 0 after ``steps`` iterations, and its ``modes_covered`` then."""
    task = suite.task(task_name)
    lr = task.lr_range[0]
    result = run_one(task.env_id, suite.agents[0], lr, lr, steps=steps, seeds=1, seed=0, samples=500,
                     **task.env_kwargs)
    return result.samples[0].double().numpy(), float(result.metrics["modes_covered"][0])


def main(argv: list[str] | None = None) -> None:
    def options(p):
        p.add_argument("--at", default="500,2500,7500", help="iterations of the sample panels")
    args, plt, records = figure_cli(__doc__, argv, "nk_figures.md", options)
    suite = get_suite("nk-mog")
    lines = ["# nk-mog: coverage over iterations and samples", "",
             f"Made by `python scripts/nk_mog_figures.py {args.runs} {args.out} --at {args.at}` from the stored "
             "records (held-out seeds 0..15).", "",
             "| iteration | " + " | ".join(f"{t} {m} median [IQR]" for t, _ in ARMS for m, _ in METRICS) + " |",
             "|---" * (1 + len(ARMS) * len(METRICS)) + "|"]

    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 3.6))
    table: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for (metric, label), ax in zip(METRICS, axes):
        for (task, arm), color in zip(ARMS, ("tab:red", "tab:blue")):
            steps, values = curves(records, task, metric)
            table[task, metric] = steps, values
            q1, med, q3 = np.percentile(values, [25, 50, 75], axis=0)
            ax.plot(steps, med, color=color, label=f"{arm} (median)")
            ax.fill_between(steps, q1, q3, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="center right")
    fig.suptitle(f"Nagarajan & Kolter's ring, {len(table[ARMS[0][0], METRICS[0][0]][1])} held-out seeds "
                 "(bands: interquartile range)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out / "plots" / "nk_coverage.png", dpi=120)
    plt.close(fig)
    steps = table[ARMS[0][0], METRICS[0][0]][0]
    for j, t in enumerate(steps):
        cells = []
        for task, _ in ARMS:
            for metric, _ in METRICS:
                v = table[task, metric][1][:, j]
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                cells.append(f"{med:.3g} [{q1:.3g}, {q3:.3g}]")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")

    at = [int(x) for x in args.at.split(",")]
    modes = mode_layout("ring").numpy()
    fig, axes = plt.subplots(len(ARMS), len(at), figsize=(2.6 * len(at), 2.7 * len(ARMS)), squeeze=False)
    lines += ["", "Samples of held-out seed 0 (replayed alone): modes covered at each panel's iteration.", "",
              "| arm | " + " | ".join(str(t) for t in at) + " | stored record at the end |",
              "|---" * (2 + len(at)) + "|"]
    for i, (task, arm) in enumerate(ARMS):
        covered = []
        for j, t in enumerate(at):
            samples, n = replay(suite, task, t)
            covered.append(n)
            ax = axes[i][j]
            ax.scatter(modes[:, 0], modes[:, 1], s=40, marker="x", color="black", linewidths=1)
            ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.4, color="tab:blue" if "nk" in task else "tab:red")
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{t} it., {n:.0f} modes", fontsize=9)
        axes[i][0].set_ylabel(arm, fontsize=8)
        stored = next(r for r in records if r["task"] == task and r["phase"] == "eval" and r["seed"] == 0)
        lines.append(f"| {arm} | " + " | ".join(f"{n:.0f}" for n in covered)
                     + f" | {stored['final']['modes_covered']:.0f} |")
    fig.tight_layout()
    fig.savefig(args.out / "plots" / "nk_samples.png", dpi=120)
    plt.close(fig)
    (args.out / "nk_figures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
