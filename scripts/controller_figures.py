"""The learned controllers of the suite ``learned-controllers``: pick each task's PPO seed, draw its learning curves
and what the picked policies do over an episode.

    python scripts/controller_figures.py select runs/controllers docs/reproduction/learned-controllers
    python scripts/controller_figures.py figures docs/reproduction/learned-controllers \
        docs/reproduction/learned-controllers
    python scripts/controller_figures.py train-return mog-ring-small CONTROLLER.pt --base adam --episodes 8

``select TRAINED OUT``: for every task of the suite, the runs ``TRAINED/TASK-seedS.pt`` of
``baselines/ppo_step_size.py --name TASK-seedS`` (their curves ``TRAINED/curves/TASK-seedS-seedS.csv``); the tasks
without runs there keep their rows of ``OUT/selection.csv``. The run kept is the one with the best return on the
**train** instances: ``trained_on.train_return`` of its description (the deterministic policy's mean return over full
episodes on every train instance), or, for a run saved without one (``--train-episodes 0``), the mean reward of its
rollouts' transitions over the last quarter of its iterations (the stochastic policy, train instances too). Never a
test result. The kept controller is copied to ``minmax_envs/controllers_data/TASK.pt`` and ``.json`` (what
``learned:pkg:TASK`` plays), the curves to ``OUT/curves/``, and the choice to ``OUT/selection.csv``.

``train-return TASK [CONTROLLER.pt ...] --base B --action A --episodes E [--reward R] [--constants A1,A2]``: the
deterministic return over full episodes on every train instance of the task, of action 0 (the base agent at the
training base step sizes), of the other constant actions given and of each controller at the same base, the rewards
added up as the trainer's ``--reward R`` adds them: what ``select`` ranks runs by (with ``--episodes 64``, the
trainer's ``--train-episodes``, a run's own ``trained_on.train_return``), and a check of a run against constants.

``figures RUNS OUT``: from the curves in ``OUT/curves/`` and the suite's records in ``RUNS`` (``minmax bench
--out``), ``OUT/plots/learning_curves.png`` (per task: the return of the episodes that ended in an iteration and
the mean reward per transition, against env steps; median over the PPO seeds with their min-max band) and
``OUT/plots/actions.png`` (per task: the picked controller's step sizes, or pace and scale, over an episode on the
held-out seeds 0-3, which play test instances, at the base step sizes the protocol tuned for it, next to the tuned
constant step sizes of its base agent), and the table ``OUT/figures.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minmax_envs.controller_files import LearnedController  # noqa: E402
from minmax_envs.evaluation import get_suite  # noqa: E402
from minmax_envs.evaluation.catalogue import LEARNED_BASES, LEARNED_CONTROLLERS  # noqa: E402
from minmax_envs.evaluation.store import ResultStore  # noqa: E402
from minmax_envs.games._base import PLAYERS  # noqa: E402
from minmax_envs.step_size_control import GameConfig, StepSizeCore  # noqa: E402

SUITE = "learned-controllers"
DATA = Path(__file__).resolve().parents[1] / "minmax_envs" / "controllers_data"
SEEDS = 4  # held-out seeds drawn in the actions figure
#: What a balance controller on nSGDA's direction plays at action 0: SGDA's direction at a fixed pace and size
FIXED_SIZE = "balanced:sgda?ratio=tuned&anchor=fixed"


def read_curve(path: Path) -> dict[str, np.ndarray]:
    """A curve CSV of the trainer: column -> values (NaN in an empty cell)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in rows[0]}


def runs_of(trained: Path, task: str) -> list[tuple[int, Path, Path]]:
    """The runs ``(seed, controller .pt, curve .csv)`` of ``task`` in ``trained``, by seed."""
    out = []
    for pt in sorted(trained.glob(f"{task}-seed*.pt")):
        seed = int(pt.stem.rsplit("-seed", 1)[1])
        out.append((seed, pt, trained / "curves" / f"{task}-seed{seed}-seed{seed}.csv"))
    return out


def train_score(pt: Path, curve: Path) -> tuple[float, str]:
    """What a run is picked by (see the module's docstring) and its name."""
    trained_on = json.loads(pt.with_suffix(".json").read_text())["trained_on"]
    unit = " (log-distance)" if trained_on.get("args", {}).get("reward") == "log-distance" else ""
    if trained_on.get("train_return") is not None:
        return float(trained_on["train_return"]), "deterministic train return" + unit
    rewards = read_curve(curve)["charts/mean_reward"]
    return float(np.nanmean(rewards[-max(1, len(rewards) // 4):])), "mean reward, last quarter" + unit


def copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def select(trained: Path, out: Path) -> None:
    (out / "curves").mkdir(parents=True, exist_ok=True)
    DATA.mkdir(exist_ok=True)
    rows = []
    for task in LEARNED_BASES:
        runs = runs_of(trained, task)
        if not runs:
            print(f"{task}: no runs in {trained}", file=sys.stderr)
            continue
        scored = [(seed, pt, curve, *train_score(pt, curve)) for seed, pt, curve in runs]
        best = max(scored, key=lambda s: s[3])
        for seed, _, curve, score, how in scored:
            copy_atomic(curve, out / "curves" / f"{task}-seed{seed}.csv")
            rows.append({"task": task, "ppo_seed": seed, "score": score, "criterion": how,
                         "selected": seed == best[0]})
        for suffix in (".pt", ".json"):
            copy_atomic(best[1].with_suffix(suffix), DATA / f"{task}{suffix}")
        print(f"{task}: PPO seed {best[0]} ({best[4]} {best[3]:.4g})")
    done = {r["task"] for r in rows}
    path = out / "selection.csv"
    if path.is_file():  # the tasks not trained again in TRAINED keep their rows
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["task"] not in done] + rows
    rows.sort(key=lambda r: (list(LEARNED_BASES).index(r["task"]), int(r["ppo_seed"])))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def learning_curves(plt, out: Path, tasks: list[str]) -> list[str]:
    fig, axes = plt.subplots(2, len(tasks), figsize=(3.3 * len(tasks), 5.6), squeeze=False)
    lines = ["| task | PPO seeds | env steps | episodic return, first episodes | last episodes | mean reward, first "
             "10% | last 10% |", "|---|---|---|---|---|---|---|"]
    for col, task in enumerate(tasks):
        curves = [read_curve(p) for p in sorted((out / "curves").glob(f"{task}-seed*.csv"))]
        if not curves:
            continue
        cells = []
        for row, key in enumerate(("charts/episodic_return", "charts/mean_reward")):
            ax = axes[row, col]
            steps = curves[0]["global_step"]
            values = []
            for c in curves:  # each seed's points where episodes ended, on the common steps
                c.setdefault(key, c["global_step"] * np.nan)  # (a run in which no episode ended)
                ok = np.isfinite(c[key])
                values.append(np.interp(steps, c["global_step"][ok], c[key][ok]) if ok.any() else steps * np.nan)
            v = np.array(values)
            if np.isfinite(v).any():
                ax.plot(steps, np.nanmedian(v, 0), linewidth=1.2)
                ax.fill_between(steps, np.nanmin(v, 0), np.nanmax(v, 0), alpha=0.2, linewidth=0)
            else:
                ax.text(0.5, 0.5, "no episode ended", ha="center", transform=ax.transAxes, fontsize=8)
            if row == 0:
                ax.set_yscale("symlog", linthresh=1.0)  # the first episodes' divergences are far below the rest
            ax.set_xlabel("env steps")
            ax.set_ylabel("episode return" if row == 0 else "mean reward per step")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(task, fontsize=9)
                ended = [c[key][np.isfinite(c[key])] for c in curves]
                first = [e[:max(1, len(e) // 10)].mean() if len(e) else np.nan for e in ended]
                last = [e[-max(1, len(e) // 10):].mean() if len(e) else np.nan for e in ended]
                cells += [fmt_seeds(first), fmt_seeds(last)]
            else:
                n = len(steps)
                cells += [fmt_seeds([c[key][:max(1, n // 10)].mean() for c in curves]),
                          fmt_seeds([c[key][-max(1, n // 10):].mean() for c in curves])]
        lines.append(f"| {task} | {len(curves)} | {int(curves[0]['global_step'][-1])} | " + " | ".join(cells) + " |")
    fig.suptitle("PPO on the train instances: median over PPO seeds, band min-max (return: episodes that ended in "
                 "the iteration, stochastic policy)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "plots" / "learning_curves.png", dpi=110)
    plt.close(fig)
    return lines


def fmt_seeds(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{np.nanmedian(v):.3g} [{np.nanmin(v):.3g}, {np.nanmax(v):.3g}]" if np.isfinite(v).any() else "-"


def tuned(records: list[dict], task: str, agent: str) -> dict | None:
    """The step sizes the protocol tuned for ``agent`` on ``task`` (its held-out records' config)."""
    return next((r["config"] for r in records if r["task"] == task and r["agent"] == agent
                 and r["phase"] == "eval"), None)


def episode(task, controller: LearnedController, config: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Play the controller on the first run of held-out seeds 0..SEEDS-1 (test instances) as the protocol does:
    the iterations, the step sizes ``(T, N, 2)`` (PLAYERS order) and the quality ``(T, N)``."""
    first, count = task.family.runs("test", 0, SEEDS)[0]
    kwargs = {**task.env_kwargs, **task.family.arguments("test", range(first, first + count))}
    control = replace(controller.config.control, base_lr={"discriminator": config["lr_d"],
                                                          "generator": config["lr_g"]}, horizon=task.steps)
    core = StepSizeCore(GameConfig.from_kwargs(task.env_id, **kwargs), control, count)
    tr = core.reset(range(first, first + count))
    lrs, quality = [], []
    for _ in range(task.steps):
        tr = core.step(torch.as_tensor(controller.actions(tr.obs)).clamp(-1.0, 1.0))
        lrs.append(tr.lr)
        quality.append(tr.quality)
    return np.arange(1, task.steps + 1), np.array(lrs), np.array(quality)


def actions(plt, runs: Path, out: Path, tasks: list[str]) -> list[str]:
    suite = get_suite(SUITE)
    records = list(ResultStore(runs).records())
    fig, axes = plt.subplots(2, len(tasks), figsize=(3.3 * len(tasks), 5.6), squeeze=False)
    lines = ["| task | base | base agent's tuned (lr_d, lr_g) | controller's tuned base (lr_d, lr_g) | "
             "step sizes (lr_D, lr_G), median over seeds 0-3 at 10% | 50% | 100% of the episode |",
             "|---|---|---|---|---|---|---|"]
    for col, name in enumerate(tasks):
        task, (base, action) = suite.task(name), LEARNED_BASES[name]
        agent = LEARNED_CONTROLLERS[name]
        config = tuned(records, name, agent)
        ax, qax = axes[0, col], axes[1, col]
        ax.set_title(f"{name} ({base}, {action})", fontsize=9)
        if config is None:
            ax.text(0.5, 0.5, "no held-out records", ha="center", transform=ax.transAxes)
            continue
        controller = LearnedController.load(DATA / f"{name}.pt", config["lr_d"], config["lr_g"])
        steps, lrs, quality = episode(task, controller, config)
        for j, (pl, color) in enumerate(zip(PLAYERS, ("tab:blue", "tab:red"))):
            for s in range(lrs.shape[1]):
                ax.plot(steps, lrs[:, s, j], color=color, alpha=0.6, linewidth=0.8,
                        label=f"{pl} (learned)" if s == 0 else None)
        own = FIXED_SIZE if action == "balance" else base
        constant = tuned(records, name, own)
        if constant is not None:
            short = "fixed-size balanced" if action == "balance" else base
            ax.axhline(constant["lr_g"], color="tab:blue", linestyle="--", linewidth=1, label=f"{short} tuned, G")
            ax.axhline(constant["lr_d"], color="tab:red", linestyle="--", linewidth=1, label=f"{short} tuned, D")
        ax.set_yscale("log")
        ax.set_ylabel("step size on the base's unit update")
        ax.legend(fontsize=5)
        for s in range(quality.shape[1]):
            qax.plot(steps, quality[:, s], linewidth=0.8)
        qax.set_ylabel("quality (higher is better)")
        for a in (ax, qax):
            a.set_xlabel("action (iteration)")
            a.grid(alpha=0.3)
        cells = []
        for frac in (0.1, 0.5, 1.0):
            j = min(len(steps) - 1, int(frac * len(steps)) - 1)
            d, g = np.nanmedian(lrs[j, :, PLAYERS.index("discriminator")]), np.nanmedian(
                lrs[j, :, PLAYERS.index("generator")])
            cells.append(f"({d:.3g}, {g:.3g})")
        base_cfg = f"({constant['lr_d']:.3g}, {constant['lr_g']:.3g})" if constant else "-"
        lines.append(f"| {name} | {base} {action} | {base_cfg} | ({config['lr_d']:.3g}, {config['lr_g']:.3g}) | "
                     + " | ".join(cells) + " |")
    fig.suptitle("What the picked controllers do: held-out seeds 0-3 (test instances), at their tuned base step sizes",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "plots" / "actions.png", dpi=110)
    plt.close(fig)
    return lines


def cells(r: dict) -> tuple[str, str]:
    """A summary row's success (with its Wilson interval) and median (with its bootstrap interval)."""
    return (f"{r['successes']}/{r['n']} [{float(r['success_lo']):.0%}, {float(r['success_hi']):.0%}]",
            f"{float(r['median']):.4g} [{float(r['median_lo']):.4g}, {float(r['median_hi']):.4g}]")


def rank(r: dict, up: bool) -> tuple[float, float]:
    """The leaderboard's order: success rate, then the median."""
    return float(r["success_rate"]), float(r["median"]) if up else -float(r["median"])


def median_apart(a: dict, b: dict, up: bool) -> bool:
    """Whether ``a``'s median interval lies entirely on the better side of ``b``'s."""
    return float(a["median_lo"]) > float(b["median_hi"]) if up else float(a["median_hi"]) < float(b["median_lo"])


def verdicts(out: Path) -> list[str]:
    """Each learned controller against the tuned constant step sizes of its base agent and the best tuned agent of
    its task, from the report's ``OUT/summary.csv`` (held-out seeds, test instances).

    Matching its base: ``met`` when its success rate is at least the base's (its median at least as good on a tie),
    ``within noise`` when lower but both the success and the median intervals overlap, ``not met`` otherwise.
    Beating the best tuned agent (the leaderboard's order: success rate, then median): its success interval, or
    its median interval, entirely better than the best agent's (non-overlapping)."""
    with (out / "summary.csv").open() as f:
        rows = {(r["task"], r["agent"]): r for r in csv.DictReader(f)}
    lines = ["| task | learned (base, action) | success | median [95% CI] | base agent | its success | its median "
             "[95% CI] | matches its base | best tuned agent | its success | its median [95% CI] | beats it |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    for name, (base, action) in LEARNED_BASES.items():
        mine = rows.get((name, LEARNED_CONTROLLERS[name]))
        if mine is None:
            continue
        up = mine["higher_is_better"] == "True"
        own = rows[(name, FIXED_SIZE if action == "balance" else base)]
        best = max((r for (t, a), r in rows.items() if t == name and not a.startswith("learned:")),
                   key=lambda r: rank(r, up))
        apart = float(mine["success_hi"]) < float(own["success_lo"]) or median_apart(own, mine, up)
        match = "met" if rank(mine, up) >= rank(own, up) else "not met" if apart else "within noise"
        beats = float(mine["success_lo"]) > float(best["success_hi"]) or median_apart(mine, best, up)
        lines.append(f"| {name} | {base}, {action} | " + " | ".join(cells(mine)) + f" | {own['agent']} | "
                     + " | ".join(cells(own)) + f" | {match} | {best['agent']} | " + " | ".join(cells(best))
                     + f" | {'yes' if beats else 'no'} |")
    return lines


def figures(runs: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(parents=True, exist_ok=True)
    tasks = list(LEARNED_BASES)
    text = ["# learned-controllers: learning curves and actions", "",
            f"Made by `python scripts/controller_figures.py figures {runs} {out}`.", "",
            "## Each controller against its base and the best tuned agent (held-out seeds, test instances)", "",
            *verdicts(out), "", "## Learning curves (train instances)", "",
            "![learning curves](plots/learning_curves.png)", "",
            "Per task, over its PPO seeds: median [min, max] of the mean over the first and the last tenth of the "
            "iterations.", "", *learning_curves(plt, out, tasks), "",
            "## What the picked controllers do (held-out seeds 0-3, test instances)", "",
            "![actions](plots/actions.png)", "", *actions(plt, runs, out, tasks), ""]
    tmp = out / f".figures.md.{os.getpid()}.tmp"
    tmp.write_text("\n".join(text))
    os.replace(tmp, out / "figures.md")


def policy_of(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``action A``: the constant action ``A`` for both entries; else a controller file's deterministic actions.
    Both clipped to ``[-1, 1]``, from the core's raw observations."""
    if name.startswith("action "):
        constant = float(name.split()[1])
        return lambda obs: torch.full((obs.shape[0], 2), constant).clamp(-1.0, 1.0)
    controller = LearnedController.load(name)
    return lambda obs: torch.as_tensor(controller.actions(obs.to(torch.float32).numpy())).clamp(-1.0, 1.0)


def train_returns(task: str, base: str, action: str, episodes: int, controllers: list[str],
                  reward: str = "change", constants: tuple[float, ...] = ()) -> None:
    """Print the deterministic return over full episodes on every train instance of ``task`` (``episodes`` per group
    of its family, as ``baselines/ppo_step_size.py --train-episodes`` scores a run) of action 0 (the base agent at
    the training base step sizes) and of each controller, all at those base step sizes: mean, standard error, count.
    ``reward``: the trainer's ``--reward`` the returns add up (``baselines.ppo_step_size.reward_of``);
    ``constants``: more constant actions, each the same for both entries (``a`` sets ``base * 10 ** a``)."""
    from baselines.ppo_step_size import Args, episode_returns

    args = Args(suite=SUITE, task=task, base=base, action=action, reward=reward)
    print("| policy | mean return | standard error | episodes |\n|---|---|---|---|")
    for path in ["action 0", *(f"action {a:g}" for a in constants), *controllers]:
        r = episode_returns(args, policy_of(path), episodes)
        print(f"| {path} | {float(r.mean()):.3f} | {float(r.std() / len(r) ** 0.5):.3f} | {len(r)} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("select", help="pick each task's PPO seed by its train-instance return")
    s.add_argument("trained", type=Path, help="the trainer's output directory (--out)")
    s.add_argument("out", type=Path)
    f = sub.add_parser("figures", help="learning curves and actions")
    f.add_argument("runs", type=Path, help="the suite's results directory (minmax bench --out)")
    f.add_argument("out", type=Path)
    r = sub.add_parser("train-return", help="action 0 and controllers on every train instance of a task")
    r.add_argument("task")
    r.add_argument("controllers", nargs="*", help="controller files (NAME.pt)")
    r.add_argument("--base", default="sgda")
    r.add_argument("--action", default="step_sizes")
    r.add_argument("--episodes", type=int, default=8, help="episodes per group of the task's family")
    r.add_argument("--reward", default="change", help="what the returns add up: change or log-distance")
    r.add_argument("--constants", type=lambda v: tuple(float(x) for x in v.split(",")), default=(),
                   help="more constant actions to score, comma-separated (e.g. 0.2,0.5)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "select":
        select(args.trained, args.out)
    elif args.command == "train-return":
        train_returns(args.task, args.base, args.action, args.episodes, args.controllers, args.reward,
                      args.constants)
    else:
        figures(args.runs, args.out)


if __name__ == "__main__":
    main()
