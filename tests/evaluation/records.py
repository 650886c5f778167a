"""Builders of synthetic episode records for the evaluation tests, laid out by the declared record
(:data:`minmax_envs.evaluation.record.FIELDS`, through :func:`~minmax_envs.evaluation.record.build_record`)."""

from __future__ import annotations

from minmax_envs.evaluation.record import build_record

STEPS = [0, 10, 20, 30]


def make_record(task, env_id, agent, seed, *, phase="eval", value=1.0, success=False, diverged=False, ttt=None,
                lr=(0.1, 0.1), metric="distance", higher_is_better=False, target=0.1, env_kwargs=None,
                curve=None, final=None, samples=None, config_index=0, plots=None, suite="synth", suite_version=3,
                wall=0.25, key=None):
    """One episode record (every required field of the declared record, and the optional ones given)."""
    curve = curve if curve is not None else {metric: [2.0, 1.5, 1.2, value]}
    values = {
        "key": key or f"{task}|{agent}|{phase}|{lr}|{seed}", "suite": suite, "suite_version": suite_version,
        "task": task, "env_id": env_id, "env_kwargs": env_kwargs or {}, "steps": STEPS[-1], "eval_every": 10,
        "device": "cpu", "metric": metric, "higher_is_better": higher_is_better, "target": target,
        "target_metric": metric, "agent": agent, "config": {"lr_d": lr[0], "lr_g": lr[1]},
        "config_index": config_index, "phase": phase, "seed": seed, "seed_block": 4,
        "final": final if final is not None else {metric: value}, "value": value, "success": success,
        "diverged": diverged, "divergence_step": 5 if diverged else -1,
        "curve": {"steps": STEPS, **curve, "diverged": [0.0, 0.0, 1.0 if diverged else 0.0, 1.0 if diverged else 0.0]},
        "time_to_target": ttt, "wall_time_s": wall,
        "versions": {"minmax_envs": "0", "torch": "0", "numpy": "0", "python": "3"},
        "time": "2026-01-01T00:00:00+00:00",
    }
    if samples is not None:
        values["samples"] = samples
    if plots is not None:
        values["plots"] = plots
    return build_record(values)
