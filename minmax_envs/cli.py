"""The ``minmax`` command: list what exists, run one episode, benchmark agents on a suite, report.

::

    minmax list [envs|agents|suites]
    minmax run ENV --agent NAME --lr LR [--lr-g LR] --steps N [--seeds N] [--arg key=value ...]
    minmax bench --suite quick --agents sgda,nsgda,adam,adalr,adadir --seeds N --out DIR
    minmax report DIR

Bad names and options print a one-line error naming what is allowed and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch


class _Error(Exception):
    """A user error: printed as ``minmax: error: ...``, exit status 2."""


def _parse_arg(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise _Error(f"--arg expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a plain string such as loss=wgan
    return key, value


def _cmd_list(args: argparse.Namespace) -> None:
    from minmax_envs import list_envs, spec
    from minmax_envs.evaluation import AGENTS, get_suite, list_suites

    kinds = ["envs", "agents", "suites"]
    bad = [w for w in args.what if w not in kinds]
    if bad:
        raise _Error(f"minmax list: unknown {bad[0]!r}; choose from {', '.join(kinds)}")
    what = args.what or kinds
    if "envs" in what:
        print("environments:")
        for env_id in list_envs():
            print(f"  {env_id:<30} {spec(env_id).summary}")
    if "agents" in what:
        print("agents:")
        for name, (_, summary) in sorted(AGENTS.items()):
            print(f"  {name:<30} {summary}")
    if "suites" in what:
        print("suites:")
        for name in list_suites():
            s = get_suite(name)
            print(f"  {name + ' v' + str(s.version):<30} {len(s.tasks)} tasks, agents {','.join(s.agents)}: "
                  f"{s.description}")


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4g}"


def _cmd_run(args: argparse.Namespace) -> None:
    from minmax_envs.evaluation import run_one

    kwargs = dict(_parse_arg(a) for a in args.arg)
    result = run_one(args.env, args.agent, args.lr, args.lr_g, steps=args.steps, seeds=args.seeds, seed=args.seed,
                     device=args.device, **kwargs)
    ok = ~result.diverged
    print(f"{args.env} agent={args.agent} lr_d={args.lr:g} lr_g={args.lr if args.lr_g is None else args.lr_g:g} "
          f"steps={args.steps} seeds={args.seed}..{args.seed + args.seeds - 1}: "
          f"{int((~ok).sum())}/{args.seeds} diverged")
    print(f"{'metric':<24}{'median':>12}{'mean':>12}{'min':>12}{'max':>12}   (over seeds that did not diverge)")
    for name, v in result.metrics.items():
        if v.ndim != 1 or name == "diverged":
            continue
        v = v[ok].double()
        v = v[torch.isfinite(v)]
        stats = [v.quantile(0.5).item(), v.mean().item(), v.min().item(), v.max().item()] if v.numel() else [math.nan]*4
        print(f"{name:<24}" + "".join(f"{_fmt(x):>12}" for x in stats))


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [t for t in text.split(",") if t]


def _cmd_bench(args: argparse.Namespace) -> None:
    from minmax_envs.evaluation import bench

    summary = bench(args.suite, _names(args.agents), args.out, seeds=args.seeds, tune_seeds=args.tune_seeds,
                    budget=args.budget, search=args.search, tasks=_names(args.tasks), device=args.device,
                    backend=args.backend, address=args.address, progress=not args.no_progress)
    print(f"{summary.ran} runs done, {summary.skipped} episodes already stored, {summary.failed} runs failed -> "
          f"{summary.out}",
          file=sys.stderr)
    if not args.no_report:
        from minmax_envs.evaluation.report import report

        print(report(summary.out, plots=not args.no_plots))
    if summary.failed:
        raise _Error(f"{summary.failed} run(s) failed; see {summary.out / 'errors.jsonl'}")


def _cmd_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from minmax_envs.evaluation.report import report
    from minmax_envs.evaluation.store import RESULTS_FILE

    if not (Path(args.dir) / RESULTS_FILE).is_file():
        raise _Error(f"no results in {args.dir!r}: expected {Path(args.dir) / RESULTS_FILE} (written by minmax bench)")
    print(report(args.dir, plots=not args.no_plots))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minmax", description="GAN training as two-player environments: benchmark "
                                "optimizers as agents on min-max games.")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (torch's default if omitted)")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="registered environments, agents and suites")
    ls.add_argument("what", nargs="*", help="any of envs, agents, suites (default: all)")
    ls.set_defaults(fn=_cmd_list)

    run = sub.add_parser("run", help="one batched episode of an agent on an environment; prints final metrics")
    run.add_argument("env", help="environment id (minmax list envs)")
    run.add_argument("--agent", required=True, help="agent name (minmax list agents)")
    run.add_argument("--lr", type=float, required=True, help="step size (the discriminator's, and the generator's "
                     "unless --lr-g)")
    run.add_argument("--lr-g", type=float, default=None, help="the generator's step size")
    run.add_argument("--steps", type=int, required=True, help="iterations")
    run.add_argument("--seeds", type=int, default=1, help="seeds run as one batch")
    run.add_argument("--seed", type=int, default=0, help="first seed")
    run.add_argument("--device", default="cpu")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                     help="environment argument (JSON value or string), e.g. --arg loss=wgan --arg regularizer=nk")
    run.set_defaults(fn=_cmd_run)

    b = sub.add_parser("bench", help="tune and evaluate agents on a suite; results resume from --out")
    b.add_argument("--suite", required=True, help="suite name (minmax list suites) or a .json suite file")
    b.add_argument("--agents", default=None, help="comma-separated agent names (default: the suite's)")
    b.add_argument("--seeds", type=int, default=None, help="held-out evaluation seeds (default: the suite's)")
    b.add_argument("--tune-seeds", type=int, default=None, help="seeds per tuning configuration")
    b.add_argument("--budget", type=int, default=None, help="step-size configurations per agent and task")
    b.add_argument("--search", choices=["grid", "random"], default="grid")
    b.add_argument("--tasks", default=None, help="comma-separated task names of the suite (default: all)")
    b.add_argument("--device", default=None, help="device (default: the suite's)")
    b.add_argument("--backend", choices=["local", "ray"], default="local")
    b.add_argument("--address", default=None, help="Ray cluster address (--backend ray; local Ray if omitted)")
    b.add_argument("--out", default="results", help="results directory (default: ./results)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    b.add_argument("--no-plots", action="store_true", help="report without plots")
    b.set_defaults(fn=_cmd_bench)

    r = sub.add_parser("report", help="leaderboard (markdown), CSV and plots of a results directory")
    r.add_argument("dir", help="results directory written by minmax bench")
    r.add_argument("--no-plots", action="store_true")
    r.set_defaults(fn=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from minmax_envs import tune_cpu_allocator

    tune_cpu_allocator()  # functional steps allocate fresh tensors: keep freed memory (see its docstring)
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise _Error(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        args.fn(args)
    except (_Error, ValueError) as e:
        print(f"minmax: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (``minmax report DIR | head``): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
