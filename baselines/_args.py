"""Command-line arguments from a dataclass (CleanRL style, without extra dependencies).

Each field becomes ``--field-name`` with its default and type; the field's docstring-style comment is not
available at run time, so a field's help comes from ``field(metadata={"help": ...})``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse(cls: type[T], argv: list[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` into an instance of the dataclass ``cls`` (``--help`` lists every field)."""
    parser = argparse.ArgumentParser(description=description or (cls.__doc__ or "").split("\n\n")[0])
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default: Any = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = hints[f.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[X] / X | None: parse as X
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        conv = _bool if kind is bool else kind
        parser.add_argument("--" + f.name.replace("_", "-"), type=conv, default=default,
                            help=f"{f.metadata.get('help', '')} (default: {default})")
    return cls(**vars(parser.parse_args(argv)))
