"""The docs must not drift from the code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_env_cards_are_generated_from_the_current_docstrings():
    r = subprocess.run([sys.executable, "scripts/gen_env_cards.py", "--check"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def _python_blocks(path: Path) -> list[str]:
    blocks, cur, inside = [], [], False
    for line in path.read_text().splitlines():
        if line.strip() == "```python":
            inside, cur = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(cur))
        elif inside:
            cur.append(line)
    return blocks


def test_python_examples_in_readme_and_docs_run():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    ran = 0
    for path in docs:
        for i, block in enumerate(_python_blocks(path)):
            try:
                exec(compile(block, f"{path.name}[block {i}]", "exec"), {})
            except Exception as e:  # noqa: BLE001 - report which example broke
                raise AssertionError(f"{path.name} python block {i} failed: {e!r}\n{block}") from e
            ran += 1
    assert ran >= 3


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
