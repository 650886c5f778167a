"""The command line the figure scripts share (``scripts/*_figures.py``): a suite's results directory in, a
directory of ``plots/`` and a Markdown table out."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from minmax_envs.evaluation.store import ResultStore


def figure_cli(doc: str, argv: list[str] | None, table: str,
               options: Callable[[argparse.ArgumentParser], None] = lambda p: None
               ) -> tuple[argparse.Namespace, Any, list[dict[str, Any]]]:
    """Parse ``RUNS OUT [--threads N]`` and the script's ``options``; set torch's threads, make ``OUT/plots``;
    return the arguments, ``matplotlib.pyplot`` on the Agg backend and the stored records of ``RUNS``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="the suite's results directory (minmax bench --out)")
    p.add_argument("out", type=Path, help=f"where plots/ and {table} go")
    p.add_argument("--threads", type=int, default=1)
    options(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(ResultStore(args.runs).records())
    (args.out / "plots").mkdir(parents=True, exist_ok=True)
    return args, plt, records
