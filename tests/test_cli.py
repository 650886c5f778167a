"""The ``minmax`` command: list, run, bench, report, and clear errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from minmax_envs import list_envs
from minmax_envs.cli import main
from minmax_envs.evaluation import ResultStore, Suite, Task, list_agents, list_suites

TINY = Suite("cli-tiny", 1, (Task("dirac", "DiracGAN-v0", 20, 10, "distance", False, 0.5,
                                  {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.05, 0.2)),),
             budget=2, tune_seeds=2, eval_seeds=3, agents=("sgda", "nsgda"))


def test_list_shows_envs_agents_and_suites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in list_envs() + list_agents() + list_suites():
        assert name in out
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    assert "quick v1" in out and "TwoMode-v0" not in out


def test_run_prints_the_final_metrics(capsys):
    code = main(["run", "DiracGAN-v0", "--agent", "sgda", "--lr", "0.1", "--steps", "50", "--seeds", "4",
                 "--arg", "loss=wgan", "--arg", "regularizer=nk", "--arg", "init_std=0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "0/4 diverged" in out and "distance" in out and "theta" in out
    from minmax_envs.evaluation import run_one

    result = run_one("DiracGAN-v0", "sgda", 0.1, steps=50, seeds=4, loss="wgan", regularizer="nk", init_std=0.5)
    row = next(line.split() for line in out.splitlines() if line.startswith("distance"))
    median = float(np.median(result.metrics["distance"].numpy()))  # the mean of the two middle seeds
    assert float(row[1]) == pytest.approx(median, rel=1e-3)


def test_run_refuses_every_argument_it_sets_itself_as_an_env_argument():
    """``--arg`` may not set what minmax run passes to make(), run_one() or the EpisodeTask a runner plays itself
    (bad inputs and their messages: tests/test_bad_inputs.py)."""
    import inspect
    from dataclasses import fields

    from minmax_envs.cli import RUN_OWN_ARGS
    from minmax_envs.episode import EpisodeTask
    from minmax_envs.evaluation import run_one
    from minmax_envs.registry import make

    def named(fn):
        return {n for n, p in inspect.signature(fn).parameters.items()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"}

    own = named(run_one) | ({f.name for f in fields(EpisodeTask)} - {"env_kwargs"}) | {"env_id", "num_seeds", "device"}
    assert own <= set(RUN_OWN_ARGS), own - set(RUN_OWN_ARGS)
    assert "dtype" in named(make) and "dtype" not in RUN_OWN_ARGS  # a real env argument: --arg dtype=float64


def test_bench_then_report_from_a_suite_file(tmp_path, capsys):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(TINY.to_dict()))
    out = tmp_path / "results"
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--no-progress", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "sgda" in text and "nsgda" in text and "dirac" in text
    assert (out / "leaderboard.md").is_file() and (out / "summary.csv").is_file()
    assert len(list(ResultStore(out).records())) == 2 * 2 * 2 + 2 * 3
    assert main(["report", str(out), "--no-plots"]) == 0
    assert capsys.readouterr().out.strip() == (out / "leaderboard.md").read_text().strip()


def test_the_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "minmax_envs", "list", "agents"], capture_output=True, text=True)
    assert proc.returncode == 0 and "adalr" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "minmax_envs", "bench", "--suite", "nope"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "unknown suite 'nope'" in proc.stderr


MY_OPTIM = """
import pathlib
import torch
pathlib.Path(__file__).with_name("IMPORTED").write_text("my_optim was imported")


class Opt(torch.optim.SGD):
    pass
"""


def test_allow_module_imports_your_optimizer_for_that_command_and_its_source_keys_the_records(
        tmp_path, monkeypatch, capsys):
    """The control of the bad-input table's planted modules: opted in to, a module of your own is imported (and
    its import runs); without the opt-in, before or after, it is not. Its source is part of every record's key."""
    import torch

    from minmax_envs.evaluation.agent_names import agent_digest

    (tmp_path / "my_optim.py").write_text(MY_OPTIM)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_optim", raising=False)
    argv = ["run", "Bilinear-v0", "--agent", "torch:my_optim.Opt?momentum=0.5", "--lr", "0.1", "--steps", "3"]
    assert main(argv) == 2 and "--allow-module my_optim" in capsys.readouterr().err
    assert not (tmp_path / "IMPORTED").exists()
    assert main(argv + ["--allow-module", "my_optim"]) == 0 and "0/1 diverged" in capsys.readouterr().out
    assert (tmp_path / "IMPORTED").exists()
    assert main(argv) == 2  # the opt-in was for that command only

    digest = agent_digest("torch:my_optim.Opt")
    assert digest.startswith("my_optim@sha1:")
    (tmp_path / "my_optim.py").write_text(MY_OPTIM + "\n# an edit changes what the records would hold\n")
    assert agent_digest("torch:my_optim.Opt") not in (digest, None)
    assert agent_digest("torch:torch.optim.Adam?betas=[0.5,0.9]") == f"torch=={torch.__version__}"  # as before
