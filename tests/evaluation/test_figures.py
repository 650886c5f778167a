"""The figure scripts of docs/reproduction.md run on a store and draw what the records hold."""

from __future__ import annotations

import re

from minmax_envs.evaluation import bench
from scripts import balance_figures


def test_balance_figures_replay_the_held_out_block_and_show_the_pace_each_agent_holds(tmp_path):
    agents = ["sgda", "balanced:sgda?ratio=tuned&anchor=fixed"]
    bench("balance", agents=agents, tasks=["dirac-wgan"], out=tmp_path / "runs", progress=False)
    balance_figures.main([str(tmp_path / "runs"), str(tmp_path / "out"), "--points", "10"])
    assert (tmp_path / "out" / "plots" / "update_norm_ratio.png").stat().st_size > 10_000
    rows = {r.split(" | ")[1]: r.split(" | ") for r in (tmp_path / "out" / "figures.md").read_text().splitlines()
            if r.startswith("| dirac-wgan")}
    assert set(rows) == {"sgda", "sgda?ratio=tuned&anchor=fixed"}
    for row in rows.values():
        assert row[-1] == "64/64 |"  # every held-out seed's final metric reproduced by the replay
    fixed = rows["sgda?ratio=tuned&anchor=fixed"]
    pace = float(fixed[2]) / float(fixed[3])  # lr_d / lr_g: the pace a tuned-ratio agent holds
    for cell in fixed[4:7]:
        med, q1, q3 = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell).groups())
        assert abs(med / pace - 1) < 1e-3 and abs(q1 / pace - 1) < 1e-3 and abs(q3 / pace - 1) < 1e-3
    sgda = [float(c.split()[0]) for c in rows["sgda"][4:7]]
    assert max(sgda) / min(sgda) > 1.5  # SGDA's pace follows the gradients and moves over training
