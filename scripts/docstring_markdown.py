"""The reST leftovers of the docstrings as Markdown, for the docs site.

The docstrings are Markdown with a few reST habits that read well as plain text (``help()``, an editor) but
show literally on a web page. `to_markdown` turns them into Markdown:

* a literal block, a paragraph ending in ``::`` and an indented block after a blank line, becomes a fenced
  ```` ```text ```` block; the paragraph ends in ``:`` (reST's own rule: ``text::`` -> ``text:``, a lone or
  space-separated ``::`` is dropped);
* a ``.. math::`` directive becomes ``$$ ... $$`` display math;
* the roles ``:math:`x``` become ``$x$``, and ``:func:`x```, ``:class:`~a.b```... become the code ```x``` /
  ```b``` (the API reference shows the objects; a failed cross-reference would break the strict build).

Used twice: by ``scripts/gen_docs.py`` on the text it copies into the env cards and agent pages, and by
mkdocstrings, through the Griffe extension `ReSTToMarkdown` below (mkdocs.yml, ``extensions:``), on every
docstring of the API reference. Text inside fenced code blocks is left alone.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|data|mod|obj|exc|const|attr|ref|doc):`([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _role(m: re.Match) -> str:
    target = m.group(2).strip()
    if "<" in target and target.endswith(">"):  # :func:`title <target>`
        target = target.split("<", 1)[0].strip()
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _inline(line: str) -> str:
    return _ROLE.sub(_role, _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", line))


def _content_indent(line: str) -> int:
    """Where the text of ``line`` starts, past a list bullet (``* ``, ``- ``, ``1. ``)."""
    m = re.match(r"^(\s*)([*+-]|\d+[.)])\s+", line)
    return len(m.group(0)) if m else _indent(line)


def to_markdown(doc: str) -> str:
    """``doc`` (a cleaned docstring) with its reST literal blocks, math directives and roles as Markdown."""
    lines, out, i, fenced = doc.splitlines(), [], 0, False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            fenced = not fenced
            out.append(line)
            i += 1
            continue
        if fenced:
            out.append(line)
            i += 1
            continue
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            base = _indent(line)
            math = [stripped.split(".. math::", 1)[1].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                math.append(lines[i].strip())
                i += 1
            while math and not math[-1]:
                math.pop()
            pad = " " * base
            out += [pad + "$$", *[pad + m for m in math if m], pad + "$$"]
            if i < len(lines):
                out.append("")
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            # the block: blank lines, then lines indented deeper than the paragraph's text
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            # A docstring's first line has lost nothing to cleandoc, but the block after it may have lost its
            # indentation (``"""Text::`` then only the block): there the block is the next paragraph.
            first = i == 0 and j < len(lines) and _indent(lines[j]) == base
            if j > i + 1 and j < len(lines) and (first or _indent(lines[j]) > base):
                end = j
                if first:
                    while end < len(lines) and lines[end].strip():
                        end += 1
                else:
                    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
                        end += 1
                block = lines[j:end]
                while block and not block[-1].strip():
                    block.pop()
                cut = min(_indent(b) for b in block if b.strip())
                if stripped == "::":
                    head = None
                elif stripped.endswith(" ::"):
                    head = line.rstrip()[:-3].rstrip()
                else:
                    head = line.rstrip()[:-1]
                pad = " " * (_content_indent(line) if head is not None else base)
                if head is not None:
                    out += [_inline(head), ""]
                out += [pad + "```text", *[(pad + b[cut:]) if b.strip() else "" for b in block], pad + "```"]
                if end < len(lines):
                    out.append("")
                i = end
                continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


try:  # the Griffe extension, for mkdocstrings (griffe comes with the docs extra)
    import griffe
except ImportError:  # gen_docs.py needs only to_markdown
    griffe = None

if griffe is not None:
    class ReSTToMarkdown(griffe.Extension):
        """Rewrite every docstring Griffe loads with `to_markdown`, before mkdocstrings parses its sections."""

        def on_instance(self, *, obj, **kwargs) -> None:  # noqa: ANN001, ANN003 - griffe's hook signature
            if obj.is_alias:  # an import: its target is rewritten where it is defined
                return
            if obj.docstring is not None and obj.docstring.value:
                obj.docstring.value = to_markdown(obj.docstring.value)
