"""Griffe extension: adapt the numpydoc docstrings to what mkdocstrings renders well.

Two rewrites of every docstring, before it is parsed:

* Sphinx roles (``:func:`x.y```) become inline code: ``:role:`~a.b.c``` shows ``c`` and
  ``:role:`a.b.c``` shows ``a.b.c``, as Sphinx would display them (Markdown would show the role
  verbatim).
* A parameter entry naming several parameters (``a, b : float``, valid numpydoc) is split into one
  entry per name with the same type and description: Griffe otherwise gives every name of the
  entry the signature default of the first one, so the rendered defaults would be wrong.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")
SECTION = re.compile(r"^\s*-{3,}\s*$")
PARAMETER_SECTIONS = {"parameters", "other parameters", "params", "arguments", "args"}
MULTI_NAME = re.compile(r"^(\s*)(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)+)\s*(:.*)?$")


def _display(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def split_parameter_entries(text: str) -> str:
    """One numpydoc parameter entry per name (see the module docstring)."""
    lines = text.splitlines()
    out: list[str] = []
    in_params = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and SECTION.match(lines[i + 1]) and line.strip():
            in_params = line.strip().lower() in PARAMETER_SECTIONS
            out.extend([line, lines[i + 1]])
            i += 2
            continue
        match = MULTI_NAME.match(line) if in_params else None
        if match is None:
            out.append(line)
            i += 1
            continue
        indent, names, rest = match.group(1), match.group(2), match.group(3) or ""
        body = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > len(indent)):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():  # keep blank lines between entries outside the copies
            body.pop()
            j -= 1
        for name in (n.strip() for n in names.split(",")):
            out.append(f"{indent}{name} {rest}".rstrip() if rest else f"{indent}{name}")
            out.extend(body)
        i = j
    return "\n".join(out)


class RstRoles(Extension):
    """Rewrite Sphinx roles as inline code and split multi-name parameter entries."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        """Rewrite the docstring of one object (Griffe ``on_object`` event)."""
        if obj.docstring is not None:
            obj.docstring.value = split_parameter_entries(ROLE.sub(_display, obj.docstring.value))
