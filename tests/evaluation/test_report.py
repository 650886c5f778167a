"""The report of a results directory: leaderboard markdown, CSV tables and PNG plots from synthetic records."""

from __future__ import annotations

import csv
import json
from dataclasses import fields

import numpy as np
import pytest

from minmax_envs.evaluation import plots
from minmax_envs.evaluation.report import report
from minmax_envs.evaluation.stats import ConfigRow, SummaryRow
from minmax_envs.evaluation.store import ResultStore
from minmax_envs.games.dirac import DiracGAN
from minmax_envs.games.mog import MixtureOfGaussians
from minmax_envs.games.two_mode import TwoMode
from tests.evaluation.records import make_record

# the figure descriptions the protocol stores with each record of these games (Game.plots)
DIRAC_PLOTS = [p.as_dict() for p in DiracGAN().plots()]
TWO_MODE_PLOTS = [p.as_dict() for p in TwoMode(TwoMode.Config(d=4)).plots()]
MOG_PLOTS = [p.as_dict() for p in MixtureOfGaussians(MixtureOfGaussians.Config(layout="ring", hidden=8)).plots()]

PNG = b"\x89PNG\r\n\x1a\n"


def dirac_records():
    recs = []
    for agent, values, succ in (("sgda", [1.0, 2.0, 3.0, 4.0], [False] * 4),
                                ("adam", [0.05, 0.07, 0.2, 0.08], [True, True, False, True])):
        for seed, (v, ok) in enumerate(zip(values, succ)):
            theta = [1.0, 0.6 * v, 0.3 * v, v]
            recs.append(make_record("dirac", "DiracGAN-v0", agent, seed, value=v, success=ok, ttt=30 if ok else None,
                                    lr=(0.01, 0.01), curve={"distance": [1.4, 1.0, 0.5, v], "theta": theta,
                                                            "psi": [1.0, -0.5, 0.2, 0.0]}, plots=DIRAC_PLOTS))
    # an agent whose every seed diverged (finite stored values: they must still count as the worst)
    recs += [make_record("dirac", "DiracGAN-v0", "wild", s, value=0.01, diverged=True,
                         curve={"distance": [1.4, 30.0, None, None], "theta": [1.0, 20.0, None, None],
                                "psi": [1.0, -20.0, None, None]}, plots=DIRAC_PLOTS) for s in range(3)]
    # tuning: two configurations of sgda, the first one evaluated
    recs += [make_record("dirac", "DiracGAN-v0", "sgda", 10_000 + s, phase="tune", value=2.0, lr=lr, config_index=i)
             for i, lr in enumerate([(0.01, 0.01), (1.0, 1.0)]) for s in range(2)]
    return recs


def two_mode_records():
    recs = []
    for seed in range(3):
        ok = seed < 2
        final = {"mode_alignment": 0.95 if ok else 0.5, "modes_recovered": 2.0 if ok else 1.0,
                 "cos_u1": [0.97, 0.1, None], "cos_u2": [0.05, 0.93 if ok else 0.3, 0.2]}
        recs.append(make_record("two-mode", "TwoMode-v0", "nsgda", seed, value=final["mode_alignment"], success=ok,
                                ttt=20 if ok else None, metric="mode_alignment", higher_is_better=True, target=2.0,
                                final=final, curve={"mode_alignment": [0.1, 0.5, 0.9, final["mode_alignment"]]},
                                plots=TWO_MODE_PLOTS))
    return recs


def mog_records(with_samples=True):
    recs = []
    for seed in range(2):
        samples = [[2.0, 0.0], [0.0, 2.0], [-2.0, 0.01], [40.0, 40.0]] if with_samples and seed == 0 else None
        recs.append(make_record("mog", "MoG-Ring-v0", "adam", seed, value=3.0, metric="modes_covered",
                                higher_is_better=True, target=8.0, env_kwargs={"hidden": 8}, samples=samples,
                                curve={"modes_covered": [0.0, 1.0, 2.0, 3.0]}, plots=MOG_PLOTS))
    return recs


def write(tmp_path, records, suite=None):
    ResultStore(tmp_path).append(records)
    if suite is not None:
        (tmp_path / "suite.json").write_text(json.dumps(suite))
    return tmp_path


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


SUITE = {"name": "synth", "version": 3, "description": "A synthetic suite.", "tasks": [], "budget": 2,
         "tune_seeds": 2, "eval_seeds": 4, "agents": ["sgda", "adam"],
         "run": {"agents": ["sgda", "adam", "wild"], "seeds": 4, "tune_seeds": 2, "budget": 2, "search": "grid",
                 "tasks": ["dirac"], "device": "cpu"}}


def test_report_writes_markdown_csv_and_plots(tmp_path):
    d = write(tmp_path, dirac_records() + two_mode_records() + mog_records(), SUITE)
    text = report(d)
    assert (d / "leaderboard.md").read_text(encoding="utf-8") == text
    # header from suite.json
    assert "suite `synth` (version 3)" in text and "A synthetic suite." in text
    assert "2 step-size configurations" in text and "4 held-out seeds" in text
    # dirac: sgda's median of [1, 2, 3, 4] is 2.5, adam succeeds on 3 of 4 seeds and reaches the target at 30
    assert "| `sgda` | 0.01 | 0.01 | 4 | 2.5 [" in text
    assert "3/4 = 75%" in text and "30 (3/4 reach)" in text
    assert text.index("| `adam` |") < text.index("| `sgda` | 0.01")  # best first
    # the all-diverged agent: infinite median, 100% diverged
    wild = next(line for line in text.splitlines() if line.startswith("| `wild` |"))
    assert "∞ [∞, ∞]" in wild and wild.endswith("| 100% |")
    # tuning table: the evaluated configuration is marked
    tuning = text[text.index("## Tuning"):]
    assert "| `sgda` | 0 | 0.01 | 0.01 | 2 | 0/2 = 0%" in tuning and tuning.count("| ✓ |") == 1
    # plots: linked and valid PNGs
    expected = ["dirac_curves", "dirac_trajectories", "two-mode_curves", "two-mode_neuron_cosines", "mog_curves",
                "mog_samples", "performance_profiles"]
    for name in expected:
        png = d / "plots" / f"{name}.png"
        assert png.read_bytes().startswith(PNG), name
        assert f"](plots/{name}.png)" in text
    assert "## Performance profiles" in text


def test_csv_files_hold_every_row_and_field(tmp_path):
    d = write(tmp_path, dirac_records() + two_mode_records())
    report(d, plots=False)
    summary = read_csv(d / "summary.csv")
    assert list(summary[0]) == [f.name for f in fields(SummaryRow)]
    assert [(r["task"], r["agent"]) for r in summary] == [("dirac", "adam"), ("dirac", "sgda"), ("dirac", "wild"),
                                                          ("two-mode", "nsgda")]
    sgda = summary[1]
    assert float(sgda["median"]) == 2.5 and int(sgda["n"]) == 4 and float(sgda["lr_d"]) == 0.01
    assert float(summary[2]["median"]) == float("inf") and float(summary[2]["divergence_rate"]) == 1.0
    configs = read_csv(d / "configs.csv")
    assert list(configs[0]) == [f.name for f in fields(ConfigRow)]
    assert [(r["config_index"], r["selected"]) for r in configs] == [("0", "True"), ("1", "False")]
    assert not (d / "plots").exists()


def test_report_handles_missing_data(tmp_path):
    tune_only = [make_record("pending", "Bilinear-v0", "sgda", 10_000, phase="tune")]
    d = write(tmp_path, mog_records(with_samples=False) + tune_only)
    text = report(d)
    assert "Suite(s): `synth` v3 (no `suite.json`)" in text
    pending = text[text.index("### pending"):text.index("## Tuning")]
    assert "No evaluation records for this task" in pending
    assert (d / "plots" / "mog_curves.png").exists()
    assert not (d / "plots" / "mog_samples.png").exists()  # no samples stored
    assert not (d / "plots" / "performance_profiles.png").exists()  # one evaluated task only
    assert "## Performance profiles" not in text


def test_report_of_an_empty_or_missing_directory(tmp_path):
    text = report(tmp_path)
    assert "No episode records" in text and (tmp_path / "summary.csv").exists()
    with pytest.raises(ValueError, match="does not exist"):
        report(tmp_path / "nowhere")


def test_report_leaves_out_damaged_results_lines_and_names_them(tmp_path):
    from minmax_envs.evaluation.store import DamagedRecordWarning

    d = write(tmp_path, mog_records(with_samples=False))
    with open(d / "results.jsonl", "ab") as f:
        f.write(b'{"key": "abc"}\n[1, 2]\n\xff\n')
    with pytest.warns(DamagedRecordWarning, match=r"results.jsonl: skipped 3 damaged line\(s\) \(line 3: not a "
                      r"record \(missing field\(s\) suite, .*line 4: .*; line 5: invalid UTF-8"):
        text = report(d, plots=False)
    assert "2 episodes stored" in text and len(read_csv(d / "summary.csv")) == 1
    assert not (d / "results.damaged.jsonl").exists()  # a report reads, it never writes the store


@pytest.mark.parametrize("content, problem", [
    (b"\xff", r"cannot be read \('utf-8' codec can't decode byte 0xff"),
    (b"{nope", r"cannot be read \(Expecting property name"),
    (b"[1, 2]", r"not a JSON object"),
    (json.dumps({**SUITE, "tasks": 5}).encode(), r"tasks must be a list of task objects"),
    (json.dumps({**SUITE, "run": ["sgda"]}).encode(), r"run must be an object"),
    (json.dumps({**SUITE, "run": {"tasks": "dirac"}}).encode(), r"run.tasks must be a list"),
    (json.dumps({**SUITE, "version": "3"}).encode(), r"version must be an integer"),
])
def test_a_damaged_suite_json_is_named_and_the_report_is_made_without_it(tmp_path, content, problem):
    d = write(tmp_path, dirac_records())
    (d / "suite.json").write_bytes(content)
    with pytest.warns(UserWarning, match=rf"suite.json: {problem}.*; the report is made without it"):
        text = report(d, plots=False)
    assert "Suite(s): `synth` v3 (no `suite.json`)" in text and "| `adam` |" in text


# --- plots from what the records carry -----------------------------------------------------------------------------

def test_game_plots_come_from_the_records_not_from_the_env_id(tmp_path):
    """Records without figure descriptions (older records) get the curves only; a description drives its figure
    whatever the env id, and its name cannot leave the plots folder."""
    old = [{k: v for k, v in r.items() if k != "plots"} for r in dirac_records() + mog_records()]
    report(write(tmp_path / "old", old))
    assert sorted(p.name for p in (tmp_path / "old" / "plots").iterdir()) == [
        "dirac_curves.png", "mog_curves.png", "performance_profiles.png"]
    spec = {**DIRAC_PLOTS[0], "name": "../../escape"}
    renamed = [{**r, "env_id": "Elsewhere-v7", "plots": [spec]} for r in dirac_records()]
    text = report(write(tmp_path / "new", renamed))
    assert (tmp_path / "new" / "plots" / "dirac_escape.png").read_bytes().startswith(PNG)
    assert "](plots/dirac_escape.png)" in text and not (tmp_path / "escape.png").exists()


def test_a_plot_of_unknown_kind_is_left_out_with_a_warning(tmp_path):
    recs = [{**r, "plots": [{"kind": "hologram", "name": "h"}]} for r in dirac_records()]
    with pytest.warns(UserWarning, match="unknown kind.*hologram.*left out"):
        report(write(tmp_path, recs))
    assert not (tmp_path / "plots" / "dirac_h.png").exists() and (tmp_path / "plots" / "dirac_curves.png").exists()


def test_every_agent_gets_its_own_line_style_and_marker_in_agent_order():
    names = [f"agent{i}" for i in range(30)]
    st = plots.styles(names)
    assert list(st) == names and plots.styles(names) == st  # deterministic
    assert len({(s.linestyle, s.marker) for s in st.values()}) == 30
    first = [st[n] for n in names[:6]]
    for attr in ("color", "linestyle", "marker"):
        assert len({getattr(s, attr) for s in first}) == 6, attr
    assert plots.styles(["b", "a"])["b"] == st["agent0"]  # by order, not by name


def test_coinciding_flags_equal_curves_and_not_different_ones():
    base = np.array([2.0, 1.5, np.nan, 0.25, np.inf])
    curves = {"adam": base, "sgda": base + np.array([0, 0, 0, 1e-3, 0]), "adalr": base * (1 + 2e-7),  # float32 rounding
              "short": base[:3], "nsgda": base.copy()}
    assert plots.coinciding(curves) == [["adam", "adalr", "nsgda"]]
    assert plots.coinciding({"a": base, "b": base[::-1]}) == []
    assert plots.coincidence_note([["adam", "adalr"]]) == "identical curves: adam = adalr"


def test_identical_agents_get_a_note_on_their_plots(tmp_path, monkeypatch):
    twins = [{**r, "agent": "adalr", "key": r["key"] + "-twin"} for r in dirac_records() if r["agent"] == "adam"]
    notes = []
    monkeypatch.setattr(plots, "_note", lambda ax, groups: notes.append(groups))
    report(write(tmp_path, dirac_records() + twins + two_mode_records()))
    assert notes[0] == [["adam", "adalr"]]  # the dirac curves (sgda's and wild's differ)
    assert notes[1] == []  # two-mode: one agent
    # the profiles over the two tasks: each agent solves one task of the two, sgda and wild none
    assert notes[2] == [["adam", "adalr", "nsgda"], ["sgda", "wild"]] and len(notes) == 3


def test_profile_tau_axis_reaches_past_the_largest_finite_ratio():
    ratios = {"t1": {"a": 1.0, "b": 37.5}, "t2": {"a": float("inf"), "b": 1.0}}
    taus = plots.profile_taus(ratios)
    assert taus[0] == 1.0 and taus[-1] >= 37.5 and np.all(np.diff(taus) > 0)
    assert plots.profile_taus({"t": {"a": 1.0, "b": float("inf")}})[-1] > 1.0


# --- the header describes the records; text from files stays text ------------------------------------------------

def test_the_header_and_the_tables_describe_the_same_runs_after_a_resume_with_other_options(tmp_path):
    """A resume with fewer seeds and fewer agents rewrites suite.json's run; the header still describes the
    records that the tables summarize."""
    from minmax_envs.evaluation import Suite, Task, bench

    task = Task("bilinear", "Bilinear-v0", 20, 10, "distance", False, 1.0, {"n": 3}, lr_range=(0.03, 0.3))
    suite = Suite("resume", 1, (task,), budget=2, tune_seeds=2, eval_seeds=3, agents=("sgda", "adam"))
    bench(suite, out=tmp_path, progress=False)
    bench(suite, ["sgda"], out=tmp_path, seeds=2, progress=False)
    assert json.loads((tmp_path / "suite.json").read_text())["run"]["seeds"] == 2
    text = report(tmp_path, plots=False)
    protocol = next(line for line in text.splitlines() if line.startswith("**Protocol**"))
    assert "Agents `sgda`, `adam`;" in protocol
    assert "each agent tried 2 step-size configurations `(lr_d, lr_g)` on 2 tuning seeds each" in protocol
    assert "re-run on 3 held-out seeds `0..2`" in protocol
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split(" | ")[3] for line in rows[:2]] == ["3", "3"]  # the seeds column of the leaderboard


def test_text_from_suite_json_and_records_cannot_add_lines_cells_links_or_html(tmp_path):
    evil = "x\n# injected heading\n| cell | cell |\n<script>alert(1)</script> ![img](http://e/x.png) [a](b)"
    records = [{**r, "task": "t|ask\n## h2", "agent": "ag`ent|\n- item"} for r in dirac_records()]
    for r in records:
        r["plots"] = [{**DIRAC_PLOTS[0], "caption": evil}]
    suite = {**SUITE, "description": evil, "tasks": [{"name": "t|ask\n## h2", "description": evil}]}
    text = report(write(tmp_path, records, suite))
    lines = text.splitlines()
    assert not [x for x in lines if x.startswith(("# injected", "| cell", "## h2", "- item", "<script"))]
    unescaped = text.replace("\\[", "").replace("\\]", "")
    assert "<script>" not in text and "](http://e/x.png)" not in unescaped and "[a](b)" not in unescaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "### t&#124;ask \\#\\# h2" in text
    table = [x for x in lines if x.startswith("| ``ag`ent")]
    assert table and all(x.count(" | ") == 8 for x in table)  # the leaderboard's 9 cells: "|" inside is escaped
    assert "``ag`ent\\| - item``" in text
    assert (tmp_path / "plots").is_dir() and all(p.parent == tmp_path / "plots" for p in tmp_path.rglob("*.png"))


def test_md_shows_text_literally_on_one_line():
    from minmax_envs.evaluation.formatting import md

    assert md("a_b *c* <d> [e](f) #g | h & i\r\nj") == "a\\_b \\*c\\* &lt;d&gt; \\[e\\](f) \\#g &#124; h &amp; i j"
    assert md("1. first") == "1\\. first" and md("- item") == "\\- item" and md("plain text.") == "plain text."
    assert md("=== x") == "&#61;== x"
    assert md("a`b", code=True) == "``a`b``" and md("`a", code=True) == "`` `a ``" and md("x|y", code=True) == "`x\\|y`"


def test_plots_and_report_share_their_formatting_without_importing_each_other():
    import ast
    from pathlib import Path

    def imports(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    import importlib

    formatting = importlib.import_module("minmax_envs.evaluation.formatting")
    report_module = importlib.import_module("minmax_envs.evaluation.report")

    assert "minmax_envs.evaluation.report" not in imports(plots)
    assert "minmax_envs.evaluation.plots" not in imports(formatting)
    assert "minmax_envs.evaluation.report" not in imports(formatting)
    assert "minmax_envs.evaluation.formatting" in imports(plots) & imports(report_module)
