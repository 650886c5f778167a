"""The code base stays ruff-clean (rules in pyproject.toml), and evaluation knows no game."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the test extras: pip install -e '.[test]'"
    r = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --- evaluation reads records, not games -----------------------------------------------------------------------------

EVALUATION = ROOT / "minmax_envs" / "evaluation"
ENV_ID = re.compile(r"^[A-Za-z][\w./-]*-v\d+$")
GAMES = "minmax_envs.games"


def game_knowledge(source: str) -> list[str]:
    """What in a module's source knows games: imports of ``minmax_envs.games`` modules, and comparisons or
    ``startswith`` / ``endswith`` tests on an ``env_id`` or against an env-id string such as ``"TwoMode-v0"``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith(GAMES)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(GAMES):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "minmax_envs":
            found += [f"line {node.lineno}: from minmax_envs import games" for a in node.names if a.name == "games"]
        elif isinstance(node, ast.Compare) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                                               and node.func.attr in ("startswith", "endswith")):
            text = ast.unparse(node)
            strings = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if "env_id" in text or any(ENV_ID.match(s) for s in strings):
                found.append(f"line {node.lineno}: {text}")
    return found



def test_the_game_knowledge_check_finds_what_it_looks_for():
    bad = ('from minmax_envs.games.mog import mode_layout\nimport minmax_envs.games.two_mode\n'
           'if task.info["env_id"] == "TwoMode-v0": pass\nif env_id.startswith("MoG-"): pass\n'
           'ok = name in ("DiracGAN-v0",)\n')
    assert len(game_knowledge(bad)) == 5
    assert game_knowledge('import minmax_envs\nspec = {"env_id": "TwoMode-v0"}\nif kind == "points": pass\n') == []


def test_no_evaluation_module_imports_a_game_or_branches_on_env_ids():
    modules = sorted(EVALUATION.glob("*.py"))
    assert len(modules) >= 8  # the package is where this test looks
    found = {m.name: game_knowledge(m.read_text(encoding="utf-8")) for m in modules}
    assert {k: v for k, v in found.items() if v} == {}


# --- tests share helpers, never each other ---------------------------------------------------------------------------

TESTS = ROOT / "tests"


def imported_tests(source: str) -> list[str]:
    """The imports in a test module's source of another test module or of ``conftest`` (shared helpers belong in
    ``tests/helpers.py``; fixtures in ``conftest.py`` reach tests by name)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if isinstance(node, ast.ImportFrom) and node.module in ("tests", None):
            names += [a.name for a in node.names]
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if last == "conftest" or last.startswith("test_"):
                found.append(f"line {node.lineno}: imports {name}")
    return found


def test_the_test_import_check_finds_what_it_looks_for():
    pkg = "tests"  # spelled apart, so that grep finds no such import in the tests
    bad = (f"from {pkg}.conftest import SMALL_KWARGS\nfrom {pkg}.test_bad_inputs import marker\n"
           "import tests.evaluation.test_report\nfrom tests import test_gym_env\nfrom .conftest import x\n")
    assert len(imported_tests(bad)) == 5
    assert imported_tests("from tests.helpers import SMALL_KWARGS\nimport pytest\nfrom minmax_envs import make\n") == []


def test_no_test_module_imports_another_test_module_or_conftest():
    modules = sorted(TESTS.rglob("*.py"))
    assert len(modules) >= 30  # the tree is where this test looks
    found = {str(m.relative_to(ROOT)): imported_tests(m.read_text(encoding="utf-8")) for m in modules}
    assert {k: v for k, v in found.items() if v} == {}
