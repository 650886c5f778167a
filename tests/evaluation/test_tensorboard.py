"""TensorBoard logging: what is written reads back as the records and the episode say."""

import math

import pytest

import agents
import minmax_envs
from minmax_envs.cli import main
from minmax_envs.evaluation import ResultStore, Suite, Task, bench
from minmax_envs.evaluation.stats import summarize
from minmax_envs.evaluation.tensorboard import log_episode, write_tensorboard

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

DIRAC = Task("dirac-nk", "DiracGAN-v0", 40, 10, "distance", False, 0.3,
             {"loss": "wgan", "regularizer": "nk", "init_std": 0.5}, lr_range=(0.03, 0.3))
SUITE = Suite("tb", 1, (DIRAC,), budget=2, tune_seeds=2, eval_seeds=3, agents=("sgda", "torch:torch.optim.Adam"))


def _scalars(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "results"
    bench(SUITE, out=out, progress=False)
    return out


def test_records_curves_and_summaries_read_back(results, tmp_path):
    logdir = tmp_path / "tb"
    n = write_tensorboard(results, logdir)
    records = [r for r in ResultStore(results).records() if r["phase"] == "eval"]
    assert n > 0 and len(records) == 2 * 3
    for r in records:
        run = logdir / "dirac-nk" / r["agent"].replace(":", "_") / f"seed_{r['seed']}"
        got = _scalars(run)
        steps = r["curve"]["steps"]
        want = [(s, v) for s, v in zip(steps, r["curve"]["distance"]) if v is not None and math.isfinite(v)]
        assert [s for s, _ in got["distance"]] == [s for s, _ in want]
        assert [v for _, v in got["distance"]] == pytest.approx([v for _, v in want], rel=1e-6)  # float32 events
    for row in summarize(records):
        got = _scalars(logdir / "dirac-nk" / row.agent.replace(":", "_"))
        assert got["summary/median"] == [(DIRAC.steps, pytest.approx(row.median, rel=1e-6))]
        assert got["summary/success_rate"][0][1] == pytest.approx(row.success_rate)


def test_writing_again_replaces_instead_of_doubling(results, tmp_path):
    logdir = tmp_path / "tb"
    (logdir / "dirac-nk" / "sgda").mkdir(parents=True)
    (logdir / "dirac-nk" / "sgda" / "notes.txt").write_text("mine")
    first = write_tensorboard(results, logdir)
    assert write_tensorboard(results, logdir) == first
    got = _scalars(logdir / "dirac-nk" / "sgda")
    assert len(got["summary/median"]) == 1
    assert (logdir / "dirac-nk" / "sgda" / "notes.txt").read_text() == "mine"  # only our event files go


def test_an_episode_logs_each_seed_and_the_median(tmp_path):
    env = minmax_envs.make("DiracGAN-v0", num_seeds=3, loss="wgan", regularizer="nk", reg_weight=0.5)
    result = minmax_envs.run_episode(env, agents.sgda(0.1), steps=20, seed=0, eval_every=5)
    log_episode(result, tmp_path, name="dirac")
    steps = [t for t, _ in result.trajectory]
    for i in range(3):
        got = _scalars(tmp_path / "dirac" / f"seed_{i}")["distance"]
        assert got == [(t, pytest.approx(float(m["distance"][i]), rel=1e-6)) for t, m in result.trajectory]
    med = _scalars(tmp_path / "dirac" / "median")["distance"]
    assert [s for s, _ in med] == steps
    assert med[-1][1] == pytest.approx(float(result.metrics["distance"].median()), rel=1e-6)


def test_an_episode_without_a_trajectory_is_refused(tmp_path):
    env = minmax_envs.make("DiracGAN-v0", num_seeds=2)
    result = minmax_envs.run_episode(env, agents.sgda(0.1), steps=5, seed=0)
    with pytest.raises(ValueError, match="no trajectory to log: run it with eval_every"):
        log_episode(result, tmp_path)


def test_the_cli_writes_tensorboard_logs(results, tmp_path, capsys):
    logdir = tmp_path / "cli-tb"
    assert main(["report", str(results), "--no-plots", "--tensorboard", str(logdir)]) == 0
    assert "TensorBoard scalars" in capsys.readouterr().err
    assert "summary/iqm" in _scalars(logdir / "dirac-nk" / "sgda")
