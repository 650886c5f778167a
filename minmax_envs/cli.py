"""The ``minmax`` command: list what exists, run one episode, benchmark agents on a suite, report.

::

    minmax list [envs|agents|suites]
    minmax run ENV --agent NAME --lr LR [--lr-g LR] --steps N [--seeds N] [--arg key=value ...]
    minmax bench --suite quick --agents sgda,nsgda,adam,adalr,adadir --seeds N --out DIR
    minmax report DIR

Bad names and options print a one-line error naming what is allowed and exit with status 2
(``minmax: error: ...``); a damaged line of a results file is a one-line ``minmax: warning: ...``. Ctrl-C prints
one line and exits with status 130 (what a sweep stored stays stored; the same command resumes it).

Agent names import optimizers (``torch:MODULE.CLASS``) only from the installed optimizer packages
(:data:`agents.torch_optim.OPTIMIZER_PACKAGES`); ``--allow-module NAME`` opts in to another module (your own
``my_optim.py``), for this command only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from typing import Any

import torch

from minmax_envs._json import loads
from minmax_envs.registry import parse_device


class _Error(Exception):
    """A user error: printed as ``minmax: error: ...``, exit status 2."""


# What ``minmax run`` sets itself (make() and run_one() arguments, EpisodeTask fields): ``--arg`` must not.
RUN_OWN_ARGS = {
    "env_id": "the ENV argument", "agent": "--agent", "lr_d": "--lr", "lr_g": "--lr-g", "steps": "--steps",
    "seeds": "--seeds", "num_seeds": "--seeds", "count": "--seeds", "seed": "--seed", "device": "--device",
    "eval_every": None, "samples": None,
}
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it


def _parse_arg(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise _Error(f"--arg expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if not key:
        raise _Error(f"--arg expects key=value with a non-empty key, got {text!r}")
    try:
        value = loads(raw)  # nesting bounded
    except json.JSONDecodeError:
        value = raw  # a plain string such as loss=wgan
    return key, value


def _env_args(texts: list[str]) -> dict[str, Any]:
    """The ``--arg`` environment arguments, refusing a key given twice or one that an option of its own sets."""
    kwargs: dict[str, Any] = {}
    for text in texts:
        key, value = _parse_arg(text)
        if key in RUN_OWN_ARGS:
            option = RUN_OWN_ARGS[key]
            if option is None:
                raise _Error(f"--arg {key}: not an environment argument (minmax run prints the final metrics only)")
            raise _Error(f"--arg {key}: not an environment argument; use {option} instead")
        if key in kwargs:
            raise _Error(f"--arg {key} given twice ({kwargs[key]!r} and {value!r})")
        kwargs[key] = value
    return kwargs


def _check_count(option: str, value: int | None, low: int = 1) -> None:
    if value is not None and value < low:
        raise _Error(f"{option} must be an integer >= {low}, got {value}")


def _check_device(option: str, value: str | None) -> None:
    """A device this machine has, or an error naming ``option`` and what is allowed."""
    if value is not None:
        try:
            parse_device(value, option)
        except ValueError as e:
            raise _Error(str(e)) from None


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
        from minmax_envs.evaluation.agent_names import PREFIX_SUMMARIES

        for form, summary in sorted(PREFIX_SUMMARIES.items()):
            print(f"  {form:<30} {summary}")
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

    kwargs = _env_args(args.arg)
    _check_count("--steps", args.steps, low=0)
    _check_count("--seeds", args.seeds)
    _check_count("--seed", args.seed, low=0)
    _check_device("--device", args.device)
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


def _names(option: str, text: str | None) -> list[str] | None:
    """Comma-separated names (``None``: not given); an error if there are none or one is repeated."""
    if text is None:
        return None
    from minmax_envs.evaluation.agent_names import split_agent_names

    names = split_agent_names(text)  # commas inside brackets belong to a name (torch:...?betas=[0.5,0.9])
    if not names:
        raise _Error(f"{option} {text!r} names nothing; give comma-separated names, e.g. {option} a,b")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _Error(f"{option} names {', '.join(repeated)} more than once")
    return names


def _cmd_bench(args: argparse.Namespace) -> None:
    from minmax_envs.evaluation import bench
    from minmax_envs.evaluation.protocol import check_ray_address

    agents, tasks = _names("--agents", args.agents), _names("--tasks", args.tasks)
    for option, value in (("--seeds", args.seeds), ("--tune-seeds", args.tune_seeds), ("--budget", args.budget)):
        _check_count(option, value)
    _check_device("--device", args.device)
    if args.backend == "ray":
        try:
            check_ray_address(args.address, "--address")
        except ValueError as e:
            raise _Error(str(e)) from None
    summary = bench(args.suite, agents, args.out, seeds=args.seeds, tune_seeds=args.tune_seeds,
                    budget=args.budget, search=args.search, tasks=tasks, device=args.device,
                    backend=args.backend, address=args.address, progress=not args.no_progress)
    print(f"{summary.ran} runs done, {summary.skipped} episodes already stored, {summary.failed} runs failed -> "
          f"{summary.out}",
          file=sys.stderr)
    if not args.no_report:
        from minmax_envs.evaluation.report import report

        print(report(summary.out, plots=not args.no_plots))
    _tensorboard(summary.out, args.tensorboard)
    if summary.failed:
        raise _Error(f"{summary.failed} run(s) failed; see {summary.out / 'errors.jsonl'}")


def _cmd_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from minmax_envs.evaluation.report import report
    from minmax_envs.evaluation.store import RESULTS_FILE, ResultStore

    d = Path(args.dir)
    if not d.exists():
        raise _Error(f"no results in {args.dir!r}: the directory does not exist (minmax bench --out DIR writes one)")
    from minmax_envs._json import open_regular

    store = ResultStore(d)  # a file given as DIR, or a results.jsonl that is a directory: a clear error
    try:
        open_regular(store.path).close()  # a FIFO or a device named results.jsonl: refused, never read
    except FileNotFoundError:
        raise _Error(f"no results in {args.dir!r}: expected {d / RESULTS_FILE} (written by minmax bench)") from None
    print(report(d, plots=not args.no_plots))
    _tensorboard(d, args.tensorboard)


def _tensorboard(results: Any, logdir: str | None) -> None:
    """``--tensorboard DIR``: the records' curves and summaries as TensorBoard scalars."""
    if logdir is None:
        return
    from minmax_envs.evaluation.tensorboard import write_tensorboard

    try:
        n = write_tensorboard(results, logdir)
    except ImportError as e:
        raise _Error(str(e)) from None
    print(f"{n} TensorBoard scalars -> {logdir} (tensorboard --logdir {logdir})", file=sys.stderr)


TB_HELP = ("also write each held-out episode's curves and the summaries as TensorBoard scalars to DIR "
           "(needs the tensorboard extra)")
ALLOW_HELP = ("let torch:NAME.CLASS agents import optimizers from the module NAME (your own, e.g. my_optim.py on the "
              "path); without it only the installed optimizer packages (torch.optim, pytorch_optimizer, ...) are "
              "imported. Repeatable")


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
    run.add_argument("--allow-module", action="append", default=[], metavar="NAME", help=ALLOW_HELP)
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
    b.add_argument("--tensorboard", default=None, metavar="DIR", help=TB_HELP)
    b.add_argument("--allow-module", action="append", default=[], metavar="NAME", help=ALLOW_HELP)
    b.set_defaults(fn=_cmd_bench)

    r = sub.add_parser("report", help="leaderboard (markdown), CSV and plots of a results directory")
    r.add_argument("dir", help="results directory written by minmax bench")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--tensorboard", default=None, metavar="DIR", help=TB_HELP)
    r.set_defaults(fn=_cmd_report)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of the package as one line each (``minmax: warning: ...``), others as Python prints them."""
    from minmax_envs.evaluation.store import DamagedRecordWarning

    if issubclass(category, DamagedRecordWarning) or filename.startswith(_PACKAGE_DIR):
        print(f"minmax: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


def _out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in text or \
        "out of memory" in text


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line.split("DefaultCPUAllocator: ", 1)[-1]  # after torch's "[enforce fail at alloc_cpu.cpp:N] ..."


_python_show_warning = warnings.showwarning
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from minmax_envs import tune_cpu_allocator

    tune_cpu_allocator()  # functional steps allocate fresh tensors: keep freed memory (see its docstring)
    from agents.torch_optim import allow_optimizer_modules

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if args.threads is not None:
                if args.threads < 1:
                    raise _Error(f"--threads must be >= 1, got {args.threads}")
                torch.set_num_threads(args.threads)
            with allow_optimizer_modules(*getattr(args, "allow_module", [])):  # this command only
                args.fn(args)
        except KeyboardInterrupt:
            resume = " (every episode finished is stored: the same command resumes)" if args.command == "bench" else ""
            print(f"minmax: interrupted{resume}", file=sys.stderr)
            return INTERRUPTED
        except (_Error, ValueError) as e:
            print(f"minmax: error: {e}", file=sys.stderr)
            return 2
        except (MemoryError, RuntimeError) as e:  # an allocation too large for this machine: one line, not a trace
            if not _out_of_memory(e):
                raise
            print(f"minmax: error: out of memory: {_first_line(e)}; use smaller sizes (--seeds, --arg ...)",
                  file=sys.stderr)
            return 2
        except BrokenPipeError:  # the reader went away (``minmax report DIR | head``): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError as e:  # the file system refused: a path that is a file, no permission, a full disk...
            print(f"minmax: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
