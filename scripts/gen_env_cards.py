"""Write docs/envs/<id>.md, one card per registered environment, from the game docstrings.

    python scripts/gen_env_cards.py           # (re)write the cards
    python scripts/gen_env_cards.py --check   # exit 1 if a card is missing or stale (run by the tests)
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import minmax_envs
from minmax_envs.registry import game_kwargs_allowed

OUT = Path(__file__).resolve().parent.parent / "docs" / "envs"


def card(env_id: str) -> str:
    s = minmax_envs.spec(env_id)
    cls = s.game_class()
    doc = inspect.cleandoc(cls.__doc__ or "")
    title, _, body = doc.partition("\n")
    sig = inspect.signature(cls.__init__)
    defaults = {n: sig.parameters[n].default for n in game_kwargs_allowed(cls)}
    defaults.update(s.kwargs)
    args = "\n".join(f"| `{k}` | `{v!r}` |" for k, v in defaults.items())
    return (f"# {env_id}\n\n{s.summary}.\n\n"
            f"`minmax_envs.make(\"{env_id}\", num_seeds=N, **kwargs)` — game class "
            f"`{cls.__module__}.{cls.__name__}`; Gymnasium id `minmax_envs/{env_id}` "
            f"(episode length {s.max_episode_steps} actions).\n\n"
            f"**{title.strip()}**\n{body}\n\n## Defaults of this id\n\n| argument | default |\n|---|---|\n{args}\n")


def index() -> str:
    rows = "\n".join(f"| [{i}]({i}.md) | {minmax_envs.spec(i).summary} |" for i in minmax_envs.list_envs())
    return f"# Environments\n\nGenerated from the game docstrings by `scripts/gen_env_cards.py`.\n\n" \
           f"| id | game |\n|---|---|\n{rows}\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    check = ap.parse_args().check
    files = {OUT / "index.md": index(), **{OUT / f"{i}.md": card(i) for i in minmax_envs.list_envs()}}
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if check:
        for p in stale:
            print(f"stale or missing: {p} (run python scripts/gen_env_cards.py)", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for p, text in files.items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
