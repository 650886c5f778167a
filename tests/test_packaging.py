"""What a user gets who installs the built wheel: its metadata and files, the check that ``agents`` is this project's,
every registered suite from a fresh environment and another directory, and the offline GPU-check path (a
wheelhouse installed with ``--no-index`` next to an image's own torch, then ``gpu_check.sh --device cpu --quick``).

The fresh environments are real virtual environments without system site-packages. What they are given besides the
wheel is this environment's own installed distributions, linked (not copied) into a folder that a ``.pth`` file puts
on their path: for the wheel test every distribution but minmax-envs, for the offline test only torch and the
packages a CUDA PyTorch image has (``scripts/wheelhouse.py image``, and pip)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

import agents
import minmax_envs
from minmax_envs.evaluation import ResultStore, bench

ROOT = Path(__file__).resolve().parent.parent
PAPERS = ("Adam is no better than normalized SGD: Dissecting how adaptive methods improve GANs performance",
          "Dissecting adaptive methods in GANs", "Gradient descent GAN optimization is locally stable")


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH (a fresh environment must find nothing of the checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return {**env, **extra}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env or _env(), capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}: exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout + r.stderr


def _source_tree(dest: Path) -> Path:
    """The checkout's tracked and untracked-not-ignored files, copied to ``dest`` (a clean tree to build from)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not rel.startswith("docs/reproduction/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path | str]:
    """The wheel and the sdist, built from a clean copy of the tree by setuptools' PEP 517 backend (what
    ``python -m build`` calls), and what the build printed."""
    tmp = tmp_path_factory.mktemp("build")
    tree, out = _source_tree(tmp / "tree"), tmp / "dist"
    out.mkdir()
    code = (f"from setuptools import build_meta as b; b.build_wheel({str(out)!r}); b.build_sdist({str(out)!r})")
    log = _run([sys.executable, "-c", code], cwd=tree)
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz")), "log": log}


def test_the_build_warns_about_nothing(built):
    assert not [line for line in str(built["log"]).splitlines() if re.search(r"warn|deprecat", line, re.I)]


def test_the_wheel_and_the_sdist_carry_the_license_and_the_metadata(built):
    with zipfile.ZipFile(built["wheel"]) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        licence = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licence and z.read(licence[0]).decode().startswith("MIT License")
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    assert f"Version: {minmax_envs.__version__}" in meta and "Requires-Python: >=3.10" in meta
    assert {"Programming Language :: Python :: 3.12", "Typing :: Typed"} <= set(re.findall(r"Classifier: (.*)", meta))
    assert re.search(r"Requires-Dist: torch.*>=\d", meta)
    for typed in ("minmax_envs/py.typed", "agents/py.typed"):
        assert typed in names
    shipped = {n for n in names if n.startswith("minmax_envs/controllers_data/")}
    assert {f"minmax_envs/controllers_data/balance-{c}.{x}" for c in ("correlated-modes", "correlated-coefficients")
            for x in ("pt", "json")} <= shipped
    with tarfile.open(built["sdist"]) as t:
        top = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in t.getnames() if len(Path(n).parts) > 1}
    assert {"LICENSE", "CHANGELOG.md", "CITATION.cff", "baselines/train_controller.py", "scripts/gpu_check.sh",
            "tests/test_packaging.py", "minmax_envs/controllers_data/balance-correlated-modes.pt"} <= top


def test_the_versions_agree_and_the_changelog_and_citation_name_them():
    assert agents.__version__ == minmax_envs.__version__ and agents.__minmax_envs_agents__ is True
    assert f"## [{minmax_envs.__version__}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == minmax_envs.__version__
    assert cff["license"] == "MIT" and cff["authors"]
    refs = {r["title"]: r for r in cff["references"]}
    assert set(PAPERS) <= set(refs)
    assert all(r["authors"] for r in refs.values())


# --- the top-level package `agents` ---------------------------------------------------------------------------------

def _import(code: str, cwd: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(PYTHONPATH=str(path)), capture_output=True,
                          text=True, timeout=300)


def _one_message(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: minmax_envs: "), r.stderr
    return last


def test_an_agents_folder_in_the_working_directory_stops_the_import_with_one_message(tmp_path):
    planted = tmp_path / "agents"
    planted.mkdir()
    ran = tmp_path / "their-code-ran"
    (planted / "__init__.py").write_text(f"open({str(ran)!r}, 'w').close()\nfrom .models import Policy\n")
    last = _one_message(_import("import minmax_envs", tmp_path, ROOT))
    assert f"'import agents' finds {planted / '__init__.py'}, which shadows minmax_envs' own agents package" in last
    assert "rename that 'agents' folder or module, or run from another directory" in last
    assert not ran.exists(), "the check ran the shadowing package's code"
    assert _import("import minmax_envs", tmp_path.parent, ROOT).returncode == 0  # elsewhere: fine


def test_an_overwritten_agents_package_stops_the_import_with_one_message(tmp_path):
    site = tmp_path / "site"
    for package in ("minmax_envs", "agents"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    theirs = site / "agents" / "__init__.py"  # what `pip install openai-agents` does to ours
    theirs.write_text("from .agent import Agent  # the OpenAI Agents SDK\n__version__ = '0.4.0'\n")
    (site / "agents" / "agent.py").write_text("class Agent:\n    pass\n")
    info = site / "openai_agents-0.4.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: openai-agents\nVersion: 0.4.0\n")
    (info / "RECORD").write_text("agents/__init__.py,,\nagents/agent.py,,\n")
    work = tmp_path / "work"
    work.mkdir()
    for code in ("import minmax_envs", "import agents, minmax_envs"):  # found on disk, or imported first
        last = _one_message(_import(code, work, site))
        assert f"{theirs} is another distribution's 'agents' package" in last, last
        assert "install minmax-envs in its own virtual environment" in last
    assert "(installed by openai-agents)" in _one_message(_import("import minmax_envs", work, site))


# --- a suite file's controllers -------------------------------------------------------------------------------------

def test_a_suite_file_finds_the_controllers_it_names_beside_it(tmp_path, monkeypatch):
    """A relative ``learned:PATH`` in a suite file is the controller beside the file, from any working directory;
    the records keep the name as the file writes it."""
    from minmax_envs.controller_files import controller_files

    here = tmp_path / "suites"
    (here / "ctrl").mkdir(parents=True)
    for f in controller_files("pkg:balance-correlated-modes"):
        shutil.copy(f, here / "ctrl" / f"mine{f.suffix}")
    agent = "learned:ctrl/mine.pt"
    task = {"name": "t", "env_id": "TwoMode-v0", "steps": 4, "eval_every": 2, "metric": "mode_alignment",
            "higher_is_better": True, "target": 2.0, "target_metric": "modes_recovered",
            "env_kwargs": {"d": 20, "m_d": 3, "m_g": 3}}
    suite = {"name": "beside", "version": 1, "tasks": [task], "budget": 1, "eval_seeds": 2, "agents": ["sgda", agent]}
    (here / "suite.json").write_text(json.dumps(suite))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    summary = bench("../suites/suite.json", out=tmp_path / "out", progress=False)
    assert summary.failed == 0
    records = list(ResultStore(tmp_path / "out").records())
    assert {r["agent"] for r in records} == {"sgda", agent} and len(records) == 4


# --- fresh environments ---------------------------------------------------------------------------------------------

def _site_packages(venv: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


def _linked(dists: list[md.Distribution], farm: Path) -> None:
    """Link every top-level file and folder of ``dists`` (as installed here) into ``farm``."""
    farm.mkdir(parents=True)
    for dist in dists:
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            src = Path(str(dist.locate_file(top)))
            if src.exists() and not (farm / top).exists():
                (farm / top).symlink_to(src)


def _fresh_venv(path: Path, dists: list[md.Distribution]) -> Path:
    """A virtual environment without system site-packages (nor the pip and setuptools venv would put in it, which
    would hide those of ``dists``) that holds ``dists``, linked; its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    _linked(dists, path / "linked")
    (_site_packages(path) / "linked.pth").write_text(str(path / "linked") + "\n")
    return path / "bin" / "python"


def _installed_here(exclude: set[str]) -> list[md.Distribution]:
    from packaging.utils import canonicalize_name

    seen, out = set(), []
    for dist in md.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name not in seen and name not in exclude:
            seen.add(name)
            out.append(dist)
    return out


FIRST_EPISODES = """
import dataclasses, json, sys
SMALL = {"width": 8, "batch_size": 8, "eval_samples": 16, "classifier_epochs": 1}
import minmax_envs
from minmax_envs.evaluation import get_suite, list_suites
from minmax_envs.evaluation.protocol import Unit, hash_seed, run_unit, search_space
from minmax_envs.evaluation.suites import TUNE_SEED_BASE
from minmax_envs.registry import spec

print(json.dumps({"minmax_envs": minmax_envs.__file__, "suites": list_suites()}))
for name in list_suites():
    suite = get_suite(name)
    task = suite.tasks[0]
    short = dataclasses.replace(task, steps=2, eval_every=2)
    if suite.device != "cpu":  # a GPU suite's first episode, its networks and evaluation sized for a CPU
        short = dataclasses.replace(short, env_kwargs={**task.env_kwargs, **SMALL})
    block = suite.block_size("tune") if spec(task.env_id).game_class().batched else 1
    played = [a for a in suite.agents if task.plays(a)]
    for agent in {played[0], *(a for a in played if a.startswith("learned:"))}:  # the first, and the controllers
        first = search_space(task, suite.budget, "grid", seed=hash_seed(suite.name, task.name))[0]
        unit = Unit(suite.name, suite.version, short, agent, first, 0, "tune", (TUNE_SEED_BASE,), block, "cpu")
        records = run_unit(unit)
        print(json.dumps({"suite": name, "task": task.name, "agent": agent, "records": len(records)}))
"""


def test_the_wheel_runs_every_registered_suites_first_episode_from_tmp(built, tmp_path):
    """The wheel installed (``pip install --no-deps --no-index``) into a fresh environment that has its
    dependencies but no minmax-envs: from a directory that is not the checkout, every registered suite plays the
    first agent of its first task for 2 steps (and each learned controller the task names), through the protocol's
    own :func:`run_unit` (a GPU suite's networks sized for a CPU): the shipped controllers are found."""
    python = _fresh_venv(tmp_path / "venv", _installed_here({"minmax-envs"}))
    _run([python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", built["wheel"]], cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = _run([python, "-c", FIRST_EPISODES], cwd=work, env=_env(OMP_NUM_THREADS="1"))
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    where = Path(lines[0]["minmax_envs"]).resolve()
    assert where.is_relative_to((tmp_path / "venv").resolve()), f"minmax_envs imported from {where}, not the wheel"
    registered = _run([sys.executable, "-c", "from minmax_envs.evaluation import list_suites as l; print(*l())"],
                      cwd=ROOT, env=_env(PYTHONPATH=str(ROOT))).split()
    assert lines[0]["suites"] == registered
    played = {(x["suite"], x["agent"]) for x in lines[1:] if x["records"] == 1}
    assert {s for s, _ in played} == set(registered)
    assert {("balance", "learned:pkg:balance-correlated-modes"), ("balance", "sgda")} <= played


def _wheelhouse_with_floor(directory: Path, floor: str) -> None:
    """A wheelhouse whose project wheel needs ``torch>=floor`` (nothing else in it)."""
    directory.mkdir()
    with zipfile.ZipFile(directory / "minmax_envs-0.1.0-py3-none-any.whl", "w") as z:
        z.writestr("minmax_envs-0.1.0.dist-info/METADATA", "Metadata-Version: 2.4\nName: minmax-envs\nVersion: 0.1.0\n"
                   f"Requires-Dist: torch>={floor}\n")
    (directory / f"requirements-cp{sys.version_info.major}{sys.version_info.minor}.txt").write_text("")


def test_the_gpu_check_stops_clearly_below_the_torch_floor(tmp_path):
    _wheelhouse_with_floor(tmp_path / "wh", "99")
    r = subprocess.run(["bash", "scripts/gpu_check.sh", "--wheelhouse", tmp_path / "wh", "--device", "cpu",
                        tmp_path / "out.txt"], cwd=ROOT, env=_env(PYTHON=sys.executable), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2
    import torch

    assert f"wheelhouse: torch {torch.__version__} found" in r.stdout and "minmax-envs needs torch>=99" in r.stdout
    assert "## CUDA tests" not in (tmp_path / "out.txt").read_text()  # stopped before installing or checking


def test_the_gpu_check_runs_offline_from_a_wheelhouse_next_to_the_images_torch(tmp_path):
    """The whole offline path: ``scripts/wheelhouse.sh DIR`` (needs the registry), a fresh environment holding only
    torch and the packages a CUDA PyTorch image has, then ``gpu_check.sh --wheelhouse DIR --device cpu --quick``
    with that environment's Python: it installs with ``--no-index`` into a folder of its own, touches nothing of
    the environment, and every part of the check passes."""
    wheelhouse = tmp_path / "wheelhouse"
    _run(["bash", "scripts/wheelhouse.sh", wheelhouse], cwd=ROOT, env=_env(PYTHON=sys.executable))
    size = sum(f.stat().st_size for f in wheelhouse.glob("*.whl"))
    assert size <= 48 * 2**20 and len(list(wheelhouse.glob("minmax_envs-*.whl"))) == 1
    assert not list(wheelhouse.glob("torch-*.whl")) and not list(wheelhouse.glob("numpy-*.whl"))
    image = set(_run([sys.executable, "scripts/wheelhouse.py", "image"], cwd=ROOT).split())
    assert {"torch", "numpy", "scipy", "matplotlib", "tqdm", "tensorboard", "scikit-learn", "pytest"} <= image
    from packaging.utils import canonicalize_name

    python = _fresh_venv(tmp_path / "image", [d for d in _installed_here(set())  # an image has pip too
                                              if canonicalize_name(d.metadata["Name"]) in image | {"pip"}])
    for missing in ("gymnasium", "pettingzoo", "stable_baselines3", "minmax_envs", "hypothesis"):
        r = subprocess.run([python, "-c", f"import {missing}"], cwd=tmp_path, env=_env(), capture_output=True)
        assert r.returncode != 0, f"the fresh environment already has {missing}"
    before = sorted(p.name for p in _site_packages(tmp_path / "image").iterdir())
    out = tmp_path / "gpu_check.txt"
    _run(["bash", "scripts/gpu_check.sh", "--wheelhouse", wheelhouse, "--device", "cpu", "--quick", out], cwd=ROOT,
         env=_env(PYTHON=str(python), OMP_NUM_THREADS="1"), timeout=900)
    text = out.read_text()
    assert re.search(r"torch \S+ \(needs torch", text)
    assert "from the wheelhouse, into" in text and "gymnasium" in text
    parts = re.findall(r"^\(exit (\d+), \d+ s", text, re.M)
    assert parts == ["0"] * 5, text[-3000:]
    assert re.search(r"\d+ passed", text) and " failed" not in text
    assert sorted(p.name for p in _site_packages(tmp_path / "image").iterdir()) == before
