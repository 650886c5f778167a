"""Generate the reference pages of the docs from the code: one card per registered environment
(docs/envs/<id>.md, from the game docstrings) and one page per named agent (docs/agents/<name>.md, from
the agents' docstrings). The docstrings' reST literal blocks, math directives and roles become Markdown
(scripts/docstring_markdown.py, which mkdocstrings applies to the API reference too).

    python scripts/gen_docs.py           # (re)write the pages
    python scripts/gen_docs.py --check   # exit 1 if a page is missing or stale (run by the tests)
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from dataclasses import fields
from pathlib import Path

from docstring_markdown import to_markdown  # scripts/ (this file's folder) is on sys.path

import agents
import minmax_envs
from minmax_envs.evaluation.agent_names import AGENTS
from minmax_envs.step_size_control import OBS_NAMES

DOCS = Path(__file__).resolve().parent.parent / "docs"

#: The named agents of the `agents` package, one page each, in this order.
AGENT_PAGES = ("sgda", "nsgda", "adam", "rmsprop", "adagrad", "adalr", "adadir", "graft", "extragradient",
               "optimistic", "optimistic_adam", "pair", "balanced", "from_torch", "in_place")

SPACES = f"""## Spaces
Gymnasium step-size control (`gymnasium.make("minmax_envs/<id>")`, see the RL interfaces page): action
`Box(-1, 1, (2,), float32)` (log step sizes of the discriminator and the generator), observation
`Box(float32, ({len(OBS_NAMES)},))`: {", ".join(f"`{n}`" for n in OBS_NAMES)}. PettingZoo
(`minmax_envs.parallel_env`): per agent, `Box(-1, 1, (T,), float32)` in step-size mode or the flat update
`Box(-max_update, max_update, (P,), float32)`, observation `Box(float32, (2T + 2,))`, with `T` the player's
tensors and `P` its parameter count (table above).
"""


def config_fields(config: type) -> str:
    """The ``Attributes:`` section of a game's ``Config`` docstring as a list, one ``* ``name``: text`` per field
    (the card's Arguments); every field must be documented."""
    doc = inspect.cleandoc(config.__doc__ or "")
    section = doc.partition("\nAttributes:\n")[2]
    entries: dict[str, list[str]] = {}
    for line in section.splitlines():
        m = re.match(r"^    (\w+): (.*)$", line)
        if m:
            entries[m.group(1)] = [m.group(2)]
        elif line.startswith("        ") and entries:
            entries[list(entries)[-1]].append(line.strip())
        elif line.strip():
            break
    names = [f.name for f in fields(config)]
    if list(entries) != names:
        raise SystemExit(f"{config.__name__}'s Attributes section documents {list(entries)}, its fields are {names}")
    return "\n".join(f"* ``{name}``: " + "\n  ".join(text) for name, text in entries.items())


def card(env_id: str) -> str:
    s = minmax_envs.spec(env_id)
    cls = s.game_class()
    doc = inspect.cleandoc(cls.__doc__ or "")
    title, _, body = doc.partition("\n")
    before, heading, after = body.partition("## Arguments\n")  # its first paragraph, then the Config's fields
    first, _, rest = after.partition("\n\n")
    body = to_markdown(f"{before}{heading}{first}\n\n{config_fields(cls.Config)}\n\n{rest}")
    defaults = {f.name: f.default for f in fields(cls.Config)}
    defaults.update(s.kwargs)
    schedule = cls.default_schedule(cls.Config(**s.kwargs))
    defaults.update(update=schedule.update, n_critic=schedule.n_critic)
    args = "\n".join(f"| `{k}` | `{v!r}` |" for k, v in defaults.items())
    citation = f"\n## Citation\n{cls.citation}\n" if cls.citation else ""
    return (f"# {env_id}\n\n{s.summary}.\n\n"
            f"`minmax_envs.make(\"{env_id}\", num_seeds=N, **kwargs)` — game class "
            f"`{cls.__module__}.{cls.__name__}`; Gymnasium id `minmax_envs/{env_id}` "
            f"(episode length {s.max_episode_steps} actions).\n\n"
            f"**{title.strip()}**\n{body}\n\n## Defaults of this id\n\n| argument | default |\n|---|---|\n{args}\n\n"
            f"{SPACES}{citation}")


def env_index() -> str:
    rows = "\n".join(f"| [{i}]({i}.md) | {minmax_envs.spec(i).summary} |" for i in minmax_envs.list_envs())
    return f"# Environments\n\nGenerated from the game docstrings by `scripts/gen_docs.py`.\n\n" \
           f"| id | game |\n|---|---|\n{rows}\n"


def _suite_names(name: str) -> list[str]:
    """The agent names of the evaluation (``minmax bench --agents``) built on ``agents.<name>``."""
    return sorted(k for k, (_, summary) in AGENTS.items() if k.replace("-", "_") == name)


def _signature(fn) -> str:
    """The call signature without annotations (they are in the API block below)."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def agent_page(name: str) -> str:
    fn = getattr(agents, name)
    doc = to_markdown(inspect.cleandoc(fn.__doc__ or ""))
    names = _suite_names(name)
    bench = f"\nIn a suite: `minmax bench --agents {','.join(names)}`.\n" if names else ""
    return (f"# {name}\n\n```text\nagents.{name}{_signature(fn)}\n```\n\n{doc}\n{bench}\n"
            f"::: agents.{name}\n    options:\n      show_root_heading: false\n"
            "      show_docstring_description: false\n")


def agent_index() -> str:
    rows = "\n".join(f"| [`{n}`]({n}.md) | {inspect.cleandoc(getattr(agents, n).__doc__ or '').splitlines()[0]} |"
                     for n in AGENT_PAGES)
    return ("# Agent reference\n\nOne page per named agent, generated from the docstrings by "
            "`scripts/gen_docs.py`. See [Agents](../agents.md) for the design.\n\n"
            f"| agent | rule |\n|---|---|\n{rows}\n")


def pages() -> dict[Path, str]:
    out = {DOCS / "envs" / "index.md": env_index(), DOCS / "agents" / "index.md": agent_index()}
    out.update({DOCS / "envs" / f"{i}.md": card(i) for i in minmax_envs.list_envs()})
    out.update({DOCS / "agents" / f"{n}.md": agent_page(n) for n in AGENT_PAGES})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    check = ap.parse_args().check
    files = pages()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if check:
        for p in stale:
            print(f"stale or missing: {p} (run python scripts/gen_docs.py)", file=sys.stderr)
        return 1 if stale else 0
    for p, text in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
