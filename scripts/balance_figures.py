"""Update-norm ratio curves of the suite ``balance`` from its stored records.

    python scripts/balance_figures.py runs/balance docs/reproduction/balance

For every task and every agent that is a pair of optimizers, the held-out block (seeds ``0 .. 63``, one batched
env, as the suite ran it) is replayed at the agent's tuned step sizes with
``protocol.replay(..., diagnostics_every=steps // --points)``, which records each player's update norm
$\\lVert u_p \\rVert$ (the Frobenius norm of the iteration's parameter change, summed over the player's tensors) at
every point; the replay's final metrics are checked against the stored records. The figure shows the median and
interquartile range over the seeds of the pace $\\lVert u_D \\rVert / \\lVert u_G \\rVert$ over training: SGDA's
pace is set by the gradients, a balanced agent's is the constant it holds (Adam is no better than normalized SGD,
Section 4's "same pace"). On the two-mode tasks the records also keep the game's own relative update speed
$(\\lVert \\Delta W \\rVert / \\lVert W \\rVert) / (\\lVert \\Delta V \\rVert / \\lVert V \\rVert)$ (Figure 5a), for
every agent including the learned controllers (which play their own episodes and have no replay): a second row
draws it from the records alone. Writes ``OUT/plots/update_norm_ratio.png`` and the table ``OUT/figures.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minmax_envs.evaluation import get_suite  # noqa: E402
from minmax_envs.evaluation.agent_names import Runner, make_agent  # noqa: E402
from minmax_envs.evaluation.protocol import Unit, replay  # noqa: E402
from scripts.figure_cli import figure_cli  # noqa: E402

TWO_MODE = ("correlated-modes", "correlated-coefficients")


def label(agent: str) -> str:
    return "learned balance" if agent.startswith("learned:") else agent.removeprefix("balanced:")


def evaluated(records: list[dict], task: str) -> dict[str, list[dict]]:
    """The held-out records of ``task`` by agent (in the suite's agent order), sorted by seed."""
    out: dict[str, list[dict]] = {}
    for r in sorted((r for r in records if r["task"] == task and r["phase"] == "eval"), key=lambda r: r["seed"]):
        out.setdefault(r["agent"], []).append(r)
    return out


def band(ax, steps, values: np.ndarray, name: str) -> None:
    q1, med, q3 = np.nanpercentile(values, [25, 50, 75], axis=0)
    (line,) = ax.plot(steps, med, label=name, linewidth=1.2)
    ax.fill_between(steps, q1, q3, color=line.get_color(), alpha=0.15, linewidth=0)


def pace_curves(suite, task, stored: list[dict], points: int) -> tuple[list[int], np.ndarray, int]:
    """Replay ``stored`` (one agent's held-out records): the iterations, the pace per (point, seed) and how many
    seeds' final metric the replay reproduced exactly."""
    unit = Unit.of_records(suite, stored)
    every = max(1, task.steps // points)
    paces, same = [], 0
    for start in unit.starts:
        result = replay(unit, start, diagnostics_every=every)
        d = result.diagnostics
        pace = (d["agent/discriminator/update_norm"] / d["agent/generator/update_norm"]).double().numpy()
        kept = [r for r in stored if start <= r["seed"] < start + unit.block]
        slots = [r["seed"] - start for r in kept]
        paces.append(pace[:, slots])
        metric, diverged = result.metrics[task.metric].double(), result.metrics["diverged"]
        same += sum(float(metric[s]) == r["final"][task.metric] or (r["diverged"] and bool(diverged[s]))
                    for s, r in zip(slots, kept))
    return result.diagnostic_steps, np.concatenate(paces, axis=1).T, same


def main(argv: list[str] | None = None) -> None:
    def options(p):
        p.add_argument("--points", type=int, default=60, help="diagnostic points per episode")
    args, plt, records = figure_cli(__doc__, argv, "figures.md", options)
    suite = get_suite("balance")
    tasks = [t for t in suite.tasks if any(r["task"] == t.name for r in records)]
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.6 * len(tasks), 7.4), squeeze=False)
    lines = ["# balance: update-norm ratio curves", "",
             f"Made by `python scripts/balance_figures.py {args.runs} {args.out} --points {args.points}`. The pace "
             "||u_D|| / ||u_G|| of the held-out seeds replayed at each agent's tuned step sizes: median [interquartile "
             "range] over the seeds at 10%, 50% and 100% of the episode (diverged seeds leave the median once they "
             "diverge); `replayed` counts the seeds whose final metric the replay reproduced exactly.", "",
             "| task | agent | lr_d | lr_g | pace at 10% | at 50% | at 100% | replayed |",
             "|---|---|---|---|---|---|---|---|"]
    for col, task in enumerate(tasks):
        ax, speed_ax = axes[0, col], axes[1, col]
        for agent, stored in evaluated(records, task.name).items():
            cfg = stored[0]["config"]
            if task.name in TWO_MODE:
                curve = np.asarray([[np.nan if v is None else v for v in r["curve"]["update_speed_ratio"]]
                                    for r in stored], dtype=float)
                band(speed_ax, stored[0]["curve"]["steps"], curve, label(agent))
            if isinstance(make_agent(agent, cfg["lr_d"], cfg["lr_g"]), Runner):
                continue  # a learned controller: no replay (its relative speed is drawn from the records)
            steps, pace, same = pace_curves(suite, task, stored, args.points)
            band(ax, steps, pace, label(agent))
            cells = []
            for frac in (0.1, 0.5, 1.0):
                j = min(len(steps) - 1, int(np.searchsorted(steps, frac * task.steps)))
                q1, med, q3 = np.nanpercentile(pace[:, j], [25, 50, 75])
                cells.append(f"{med:.3g} [{q1:.3g}, {q3:.3g}]")
            lines.append(f"| {task.name} | {label(agent)} | {cfg['lr_d']:.3g} | {cfg['lr_g']:.3g} | "
                         + " | ".join(cells) + f" | {same}/{len(stored)} |")
            print(lines[-1], flush=True)
        ax.set_title(task.name, fontsize=10)
        ax.set_ylabel("||u_D|| / ||u_G||")
        speed_ax.set_ylabel("relative speed (Figure 5a)" if task.name in TWO_MODE else "")
        if task.name not in TWO_MODE:
            speed_ax.set_visible(False)
        for a in (ax, speed_ax):
            a.set_xlabel("iteration")
            a.set_yscale("log")
            a.grid(alpha=0.3)
    for a in axes[:, 0]:
        if a.lines:
            a.legend(fontsize=6)
    fig.suptitle("balance: the players' pace over training, held-out seeds (bands: interquartile range)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out / "plots" / "update_norm_ratio.png", dpi=110)
    plt.close(fig)
    (args.out / "figures.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
