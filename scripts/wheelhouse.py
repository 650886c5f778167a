"""Wheels for an offline machine that already has PyTorch, and their installation there.

    python scripts/wheelhouse.py build DIR [--python 3.10,3.11,3.12]   (what scripts/wheelhouse.sh runs)
    python scripts/wheelhouse.py install DIR TARGET                     (what scripts/gpu_check.sh --wheelhouse runs)
    python scripts/wheelhouse.py check DIR                              (after install: every requirement met)
    python scripts/wheelhouse.py image                                  (the distributions taken as the image's)
    python scripts/wheelhouse.py versions [DIR]                         (Python, torch; stops below torch's floor)

``build`` (where a package registry is reachable) writes into ``DIR`` the project's own wheel and every wheel it
needs, with its ``images`` and ``optimizers`` extras and the tests' ``hypothesis``, for CPython 3.10-3.12 on
manylinux x86_64, **except** torch and what a CUDA PyTorch image already has: :data:`IMAGE` and everything they
depend on (read from this Python's installed distributions). The dependency walk is this script's own: each level
of requirements is fetched with ``pip download --no-deps --only-binary=:all: --platform ... --python-version ...``
and the next level read from the downloaded wheels' metadata, markers evaluated for the target Python (pip's own
resolver would fetch torch's multi-GB CUDA wheels only to read their metadata). ``DIR/requirements-cp3XY.txt``
pins what each Python version needs; the folder must stay under :data:`LIMIT_MIB`.

``install`` (no network) runs on the machine's Python, the one with torch. It checks that torch meets the
project's floor, then walks the same requirements through what that Python already has: a distribution it has at
a version that satisfies them is used as it is; one it lacks (or has at a version that does not) is installed from
the wheelhouse with ``pip install --no-index --no-deps --target TARGET``. Nothing outside ``TARGET`` is written:
the machine's torch and packages are never touched; the check's processes put ``TARGET`` on ``PYTHONPATH``.

Needs ``packaging`` (every image with pip or pytest has it; pip's vendored copy otherwise).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.tags import compatible_tags, cpython_tags, sys_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pragma: no cover - an image without packaging still has pip
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.tags import compatible_tags, cpython_tags, sys_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "minmax-envs"
#: What a CUDA PyTorch image already has (with everything these depend on): never put in the wheelhouse.
IMAGE = ("torch", "numpy", "scipy", "matplotlib", "tqdm", "tensorboard", "scikit-learn", "pytest")
EXTRAS = ("images", "optimizers")  # the project's extras the GPU check needs
TEST_NAMES = ("hypothesis", "pytest")  # what the tests need of the project's test extra (ray and ruff are not)
PYTHONS = ("3.10", "3.11", "3.12")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
LIMIT_MIB = 48
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "minmax_envs", "agents")


class Fail(Exception):
    """A clear one-line reason to stop."""


# --- shared: requirements and wheels ------------------------------------------------------------------------------

def wheel_metadata(path: Path):
    """The METADATA of a wheel file (an email.message.Message)."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode("utf-8"))


def requirements(meta, extras: tuple[str, ...], env: dict[str, str] | None) -> list[Requirement]:
    """The ``Requires-Dist`` entries of ``meta`` that apply for ``extras`` (and the base) in marker ``env``
    (``None``: this Python's)."""
    out = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({**(env or {}), "extra": e}) for e in ("", *extras)):
            out.append(req)
    return out


def root_requirements(project_wheel: Path, env: dict[str, str] | None) -> list[Requirement]:
    """What the GPU check needs of the project: its requirements with :data:`EXTRAS`, and of its test extra the
    :data:`TEST_NAMES`."""
    meta = wheel_metadata(project_wheel)
    reqs = requirements(meta, EXTRAS, env)
    reqs += [r for r in requirements(meta, ("test",), env) if canonicalize_name(r.name) in TEST_NAMES]
    return reqs


def project_wheel(directory: Path) -> Path:
    found = sorted(directory.glob("minmax_envs-*.whl"))
    if len(found) != 1:
        raise Fail(f"wheelhouse {directory} must hold exactly one minmax_envs-*.whl (it holds {len(found)}); "
                   "rebuild it with scripts/wheelhouse.sh")
    return found[0]


def pins_file(directory: Path, version: str) -> Path:
    return directory / f"requirements-cp{version.replace('.', '')}.txt"


# --- build --------------------------------------------------------------------------------------------------------

def image_closure() -> tuple[set[str], list[str]]:
    """The canonical names of :data:`IMAGE` and everything they require (markers of this Python), read from this
    Python's installed distributions; and the roots not installed here (their own needs are then unknown)."""
    names: set[str] = set()
    missing = []
    stack = list(IMAGE)
    while stack:
        name = canonicalize_name(stack.pop())
        if name in names:
            continue
        names.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            missing.append(name)
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return names, sorted(set(missing) & {canonicalize_name(n) for n in IMAGE})


def marker_env(version: str) -> dict[str, str]:
    """PEP 508 marker values of CPython ``version`` on manylinux x86_64."""
    return {"python_version": version, "python_full_version": f"{version}.0", "implementation_name": "cpython",
            "implementation_version": f"{version}.0", "platform_python_implementation": "CPython",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"}


def target_tags(version: str) -> set:
    v = tuple(int(x) for x in version.split("."))
    return (set(cpython_tags(v, platforms=PLATFORMS))
            | set(compatible_tags(v, interpreter=f"cp{v[0]}{v[1]}", platforms=PLATFORMS)))


def _download(directory: Path, version: str, reqs: list[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--implementation", "cp", "--python-version", version, *(x for p in PLATFORMS for x in ("--platform", p)),
           "-d", str(directory), *reqs]
    r = subprocess.run(cmd, capture_output=True, text=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:
        raise Fail(f"pip download for Python {version} failed ({', '.join(reqs)}); see {log}")


def _pick(directory: Path, name: str, spec: SpecifierSet, tags: set) -> tuple[Version, Path] | None:
    found = []
    for f in directory.glob("*.whl"):
        n, v, _, ftags = parse_wheel_filename(f.name)
        if canonicalize_name(n) == name and spec.contains(v, prereleases=True) and ftags & tags:
            found.append((v, f))
    return max(found) if found else None


def _torch_ok(wheel: Path, floor: Version, env: dict[str, str]) -> bool:
    """Whether the wheel's own torch requirement (if any) admits ``floor``, the oldest torch the project supports."""
    return all(r.specifier.contains(floor, prereleases=True) for r in requirements(wheel_metadata(wheel), (), env)
               if canonicalize_name(r.name) == "torch")


class _Conflict(Exception):
    """A requirement met after its distribution was chosen: ``(name, spec)`` to honour from the start."""


def resolve(directory: Path, version: str, roots: list[Requirement], image: set[str], log: Path,
            floor: Version) -> dict:
    """``{name: (version, wheel)}`` of everything ``roots`` need on CPython ``version`` but the image's
    distributions, downloaded into ``directory`` level by level: for each the newest release whose own torch
    requirement admits ``floor`` (so that the wheelhouse serves every torch the project supports). A requirement
    that a distribution chosen earlier does not meet is added to the start and the walk is made again."""
    learned: dict[str, SpecifierSet] = {}
    for _ in range(20):
        try:
            return _walk_down(directory, version, roots, image, log, floor, learned)
        except _Conflict as c:
            name, spec = c.args
            learned[name] = learned.get(name, SpecifierSet()) & spec
    raise Fail(f"Python {version}: the requirements did not settle ({learned})")


def _walk_down(directory: Path, version: str, roots: list[Requirement], image: set[str], log: Path,
               floor: Version, learned: dict[str, SpecifierSet]) -> dict:
    env, tags = marker_env(version), target_tags(version)
    chosen: dict[str, tuple[Version, Path]] = {}
    done: set[tuple[str, str]] = set()  # (name, extra) whose requirements were queued
    queue = [(r, PROJECT) for r in roots]
    while queue:
        wanted: dict[str, tuple[SpecifierSet, set[str], list[str]]] = {}
        for req, parent in queue:
            name = canonicalize_name(req.name)
            if name in image or name == canonicalize_name(PROJECT):
                continue
            spec, extras, parents = wanted.setdefault(name, (learned.get(name, SpecifierSet()), set(), []))
            wanted[name] = (spec & req.specifier, extras | set(req.extras), parents + [parent])
        new = [n for n in wanted if n not in chosen]
        if new:
            _download(directory, version, [f"{n}{wanted[n][0]}" for n in new], log)
        queue = []
        for name, (spec, extras, parents) in wanted.items():
            if name in chosen:
                if not spec.contains(chosen[name][0], prereleases=True):
                    raise _Conflict(name, spec)  # chosen too early: walk again with this requirement from the start
            else:
                picked = _pick(directory, name, spec, tags)
                for _ in range(20):  # a release that needs a newer torch than the floor: the one before it
                    if picked is None or _torch_ok(picked[1], floor, env):
                        break
                    spec = spec & SpecifierSet(f"<{picked[0]}")
                    _download(directory, version, [f"{name}{spec}"], log)
                    picked = _pick(directory, name, spec, tags)
                if picked is None or not _torch_ok(picked[1], floor, env):
                    raise Fail(f"Python {version}: no manylinux x86_64 wheel of {name}{spec} that runs on torch "
                               f"{floor} was downloaded (needed by {', '.join(parents)}); see {log}")
                chosen[name] = picked
            meta = wheel_metadata(chosen[name][1])
            for extra in ("", *sorted(extras)):
                if (name, extra) not in done:
                    done.add((name, extra))
                    queue += [(r, name) for r in requirements(meta, (extra,) if extra else (), env)
                              if extra == "" or r.marker is not None]
    return chosen


def build(directory: Path, versions: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "wheelhouse.log"
    log.write_text("", encoding="utf-8")
    for old in directory.glob("minmax_envs-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:  # a clean copy of what the wheel is built from (no stale build/)
        source = Path(tmp) / "source"
        source.mkdir()
        for name in WHEEL_SOURCES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, source / name)
        base = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(directory), str(source)]
        for cmd in (base[:4] + ["--no-build-isolation"] + base[4:], base):  # offline first, then with a build env
            r = subprocess.run(cmd, capture_output=True, text=True)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}\n")
            if r.returncode == 0:
                break
        else:
            raise Fail(f"building the project's wheel failed; see {log}")
    wheel = project_wheel(directory)
    floor = min((Version(s.version) for s in torch_requirement(wheel).specifier if s.operator in (">=", "==", "~=")),
                default=None)
    if floor is None:
        raise Fail("the project's torch requirement states no floor (torch>=X)")
    image, missing = image_closure()
    if missing:
        print(f"wheelhouse: note: {', '.join(missing)} not installed for {sys.executable}: what they depend on is "
              "not known here and may be downloaded too", file=sys.stderr)
    keep = {wheel}
    for version in versions:
        chosen = resolve(directory, version, root_requirements(wheel, marker_env(version)), image, log, floor)
        keep |= {f for _, f in chosen.values()}
        lines = [f"{name}=={v}\n" for name, (v, _) in sorted(chosen.items())]
        pins_file(directory, version).write_text("".join(lines), encoding="utf-8")
        print(f"Python {version}: {len(chosen)} wheels: "
              + ", ".join(f"{n} {v}" for n, (v, _) in sorted(chosen.items())))
    for f in directory.glob("*.whl"):  # wheels a level fetched but no Python ended up choosing
        if f not in keep:
            f.unlink()
    size = sum(f.stat().st_size for f in directory.glob("*.whl"))
    print(f"wheelhouse {directory}: {len(keep)} wheels, {size / 2**20:.1f} MiB (limit {LIMIT_MIB} MiB); "
          f"not included: torch and the image's {', '.join(IMAGE[1:])} (and what they depend on)")
    if size > LIMIT_MIB * 2**20:
        raise Fail(f"the wheelhouse is {size / 2**20:.1f} MiB, over the {LIMIT_MIB} MiB limit")


# --- install and check (on the offline machine's Python) ----------------------------------------------------------

def _installed(name: str) -> tuple[Version, str] | None:
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return None
    return Version(dist.version), str(dist.locate_file(""))


def walk(roots: list[Requirement], pins: dict[str, tuple[Version, Path]] | None):
    """Follow ``roots`` through this Python's distributions (and, where ``pins`` is given, the wheelhouse's for
    what is missing or too old here). Returns ``({name: (version, source)}, problems)``: ``source`` is the folder
    a distribution is installed in, or ``"wheelhouse"``."""
    used: dict[str, tuple[Version, str]] = {}
    problems: list[str] = []
    done: set[tuple[str, str]] = set()
    queue = [(r, PROJECT) for r in roots]
    while queue:
        req, parent = queue.pop(0)
        name = canonicalize_name(req.name)
        if name not in used:
            have = _installed(name)
            if have is not None and req.specifier.contains(have[0], prereleases=True):
                used[name] = have
            elif pins is not None and name in pins and req.specifier.contains(pins[name][0], prereleases=True):
                used[name] = (pins[name][0], "wheelhouse")
            else:
                found = f"{have[0]} is installed ({have[1]})" if have else "it is not installed"
                offer = (f"; the wheelhouse has {pins[name][0]}" if pins is not None and name in pins
                         else "; the wheelhouse has none" if pins is not None else "")
                problems.append(f"{parent} needs {req}: {found}{offer}")
                continue
        elif not req.specifier.contains(used[name][0], prereleases=True):
            problems.append(f"{parent} needs {req}: {used[name][0]} is used ({used[name][1]})")
            continue
        version, source = used[name]
        meta = wheel_metadata(pins[name][1]) if source == "wheelhouse" else md.metadata(name)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) not in done:
                done.add((name, extra))
                queue += [(r, name) for r in requirements(meta, (extra,) if extra else (), None)
                          if extra == "" or r.marker is not None]
    return used, problems


def _wheel_for_this_python(directory: Path, name: str, version: Version) -> Path | None:
    tags = set(sys_tags())
    for f in directory.glob("*.whl"):
        n, v, _, ftags = parse_wheel_filename(f.name)
        if canonicalize_name(n) == name and v == version and ftags & tags:
            return f
    return None


def _pins(directory: Path) -> dict[str, tuple[Version, Path]]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = pins_file(directory, version)
    if not path.is_file():
        built = sorted(p.stem.removeprefix("requirements-") for p in directory.glob("requirements-cp*.txt"))
        raise Fail(f"wheelhouse {directory} has no wheels for Python {version} (built for: {', '.join(built) or 'none'}"
                   f"); rebuild it with: bash scripts/wheelhouse.sh DIR --python {version}")
    pins = {}
    for line in path.read_text(encoding="utf-8").split():
        name, _, v = line.partition("==")
        wheel = _wheel_for_this_python(directory, canonicalize_name(name), Version(v))
        if wheel is None:
            raise Fail(f"wheelhouse {directory} lists {line} for Python {version} but holds no wheel of it for this "
                       "platform")
        pins[canonicalize_name(name)] = (Version(v), wheel)
    return pins


def torch_requirement(wheel: Path | None) -> Requirement:
    """The project's torch requirement: from its wheel, or from ``pyproject.toml`` of this checkout."""
    if wheel is not None:
        return next(r for r in requirements(wheel_metadata(wheel), (), None) if canonicalize_name(r.name) == "torch")
    found = re.search(r'"(torch\s*[<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    if found is None:
        raise Fail("pyproject.toml states no torch requirement")
    return Requirement(found.group(1))


def check_torch(wheel: Path | None) -> None:
    """Stop unless this Python's torch meets the project's requirement (its floor)."""
    need = torch_requirement(wheel)
    have = _installed("torch")
    if have is None:
        raise Fail(f"{sys.executable} has no torch; run with PYTHON=<the Python that has the machine's torch>")
    if not need.specifier.contains(have[0], prereleases=True):
        raise Fail(f"torch {have[0]} found ({have[1]}), but minmax-envs needs {need}: use a Python with a newer "
                   "torch (PYTHON=...)")


def install(directory: Path, target: Path) -> None:
    wheel = project_wheel(directory)
    check_torch(wheel)
    pins = _pins(directory)
    used, problems = walk(root_requirements(wheel, None), pins)
    if problems:
        raise Fail("cannot install offline: " + "; ".join(problems))
    todo = sorted(n for n, (_, source) in used.items() if source == "wheelhouse")
    if todo:
        cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--quiet", "--no-index", "--no-deps",
               "--no-compile", "--target", str(target), *(str(pins[n][1]) for n in todo)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail(f"pip install --no-index --target {target} failed:\n{r.stdout}{r.stderr}")
    machine = sorted(n for n, (_, source) in used.items() if source != "wheelhouse")
    print(f"from this Python ({sys.executable}): " + ", ".join(f"{n} {used[n][0]}" for n in machine))
    print(f"from the wheelhouse, into {target}: " + (", ".join(f"{n} {used[n][0]}" for n in todo) or "nothing"))


def print_versions(directory: Path | None) -> None:
    """Print what the check runs with, and stop unless torch meets the project's floor."""
    check_torch(None if directory is None else project_wheel(directory))
    import torch

    cuda = (f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
            else f"CUDA {torch.version.cuda}, no CUDA device visible")
    print(f"Python {sys.version.split()[0]} ({sys.executable}), torch {torch.__version__} "
          f"(needs {torch_requirement(None if directory is None else project_wheel(directory))}; {cuda})")


def check(directory: Path) -> None:
    """Every requirement of the check met by what this Python imports (run with the target on PYTHONPATH)."""
    _, problems = walk(root_requirements(project_wheel(directory), None), None)
    if problems:
        raise Fail("requirements not met: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download the wheelhouse (needs a package registry)")
    b.add_argument("dir", type=Path)
    b.add_argument("--python", default=",".join(PYTHONS), help="comma-separated CPython versions (3.10,3.11,3.12)")
    i = sub.add_parser("install", help="install from the wheelhouse into TARGET, offline")
    i.add_argument("dir", type=Path)
    i.add_argument("target", type=Path)
    c = sub.add_parser("check", help="every requirement met by this Python")
    c.add_argument("dir", type=Path)
    sub.add_parser("image", help="print the distributions taken as the image's (installed ones only)")
    v = sub.add_parser("versions", help="print Python and torch; stop unless torch meets the project's floor")
    v.add_argument("dir", type=Path, nargs="?", default=None)
    args = ap.parse_args(argv)
    try:
        if args.command == "build":
            versions = [v.strip() for v in args.python.split(",") if v.strip()]
            bad = [v for v in versions if not re.fullmatch(r"3\.\d+", v)]
            if bad or not versions:
                raise Fail(f"--python takes versions such as 3.10,3.11,3.12, got {args.python!r}")
            build(args.dir.resolve(), versions)
        elif args.command == "install":
            install(args.dir.resolve(), args.target.resolve())
        elif args.command == "check":
            check(args.dir.resolve())
        elif args.command == "versions":
            print_versions(None if args.dir is None else args.dir.resolve())
        else:
            names, _ = image_closure()
            print("\n".join(sorted(n for n in names if _installed(n) is not None)))
    except Fail as e:
        print(f"wheelhouse: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
