"""The docs must not drift from the code."""

import importlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_env_cards_are_generated_from_the_current_docstrings():
    r = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def _blocks(path: Path, lang: str) -> list[str]:
    """The fenced code blocks of language ``lang`` in a markdown file."""
    blocks, cur, inside = [], [], False
    for line in path.read_text().splitlines():
        if line.strip() == "```" + lang:
            inside, cur = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(cur))
        elif inside:
            cur.append(line)
    return blocks


DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_python_examples_in_readme_and_docs_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write their results/ here, not into the repository
    ran = 0
    for path in DOC_FILES:
        namespace: dict = {}  # a page is read top to bottom: its blocks share one namespace
        for i, block in enumerate(_blocks(path, "python")):
            try:
                exec(compile(block, f"{path.name}[block {i}]", "exec"), namespace)
            except Exception as e:  # noqa: BLE001 - report which example broke
                raise AssertionError(f"{path.relative_to(ROOT)} python block {i} failed: {e!r}\n{block}") from e
            finally:
                torch.set_num_threads(1)  # examples may change it; the suite runs single-threaded
            ran += 1
    assert ran >= 10


def _check_command(words: list[str]) -> None:
    """A shell line of the docs: `minmax ...` parses (and names existing suites and agents), a baseline's
    flags parse, a script exists."""
    from minmax_envs.cli import _parser
    from minmax_envs.evaluation import check_agent, get_suite

    if words[0] == "minmax":
        args = _parser().parse_args(words[1:])  # SystemExit on a bad command or option
        if getattr(args, "suite", None) and not args.suite.endswith(".json"):
            get_suite(args.suite)
        for name in (getattr(args, "agents", None) or "").split(","):
            if name and not name.startswith("learned:"):
                check_agent(name)
    elif words[0] == "python" and words[1] in ("-m", "baselines/train_controller.py", "baselines/ppo_step_size.py",
                                                "baselines/multi_agent_step_sizes.py"):
        module = words[2] if words[1] == "-m" else words[1].removesuffix(".py").replace("/", ".")
        flags = words[3:] if words[1] == "-m" else words[2:]
        if module.startswith("baselines."):
            mod = importlib.import_module(module)
            mod_args = mod.Args if hasattr(mod, "Args") else None
            if mod_args is not None and "--help" not in flags:
                from baselines._args import parse

                parse(mod_args, flags)
    elif words[0] == "bash":
        assert (ROOT / words[1]).is_file(), words


def test_shell_examples_in_readme_and_docs_are_valid_commands():
    checked = 0
    for path in DOC_FILES:
        for block in _blocks(path, "bash"):
            for line in block.replace("\\\n", " ").splitlines():  # a command continued over lines is one line
                line = line.split("#", 1)[0].strip()
                if not line or line.startswith(("pip ", "export ", "cd ")):
                    continue
                try:
                    _check_command(shlex.split(line))
                except SystemExit as e:
                    raise AssertionError(f"{path.relative_to(ROOT)}: {line!r} is not a valid command") from e
                checked += 1
    assert checked >= 15


def test_the_documentation_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]' (scripts/setup.sh installs it)")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "api" / "agents" / "index.html").is_file()


def test_evaluation_docs_name_every_suite_and_task_and_reports_match_the_suites():
    import json

    from minmax_envs.evaluation import get_suite, list_suites

    text = (ROOT / "docs" / "evaluation.md").read_text()
    # the suites the package registers (this process may hold more, registered by other tests)
    builtin = subprocess.run([sys.executable, "-c", "from minmax_envs.evaluation import list_suites as l; print(*l())"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert set(builtin) <= set(list_suites())
    for name in builtin:
        suite = get_suite(name)
        assert f"`{name}`" in text, name
        for task in suite.tasks:
            assert f"`{task.name}`" in text, (name, task.name)
        committed = ROOT / "docs" / "reproduction" / name / "suite.json"
        if committed.exists():  # a committed report must be of the current version of its suite
            saved = json.loads(committed.read_text())
            assert saved["version"] == suite.version and saved["tasks"] == suite.to_dict()["tasks"], name
    for name in ("two-mode", "stability", "quick"):
        assert (ROOT / "docs" / "reproduction" / name / "leaderboard.md").is_file()
