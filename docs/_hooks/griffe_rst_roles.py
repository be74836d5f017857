"""Griffe extension: render the Sphinx roles of the numpydoc docstrings as inline code.

The docstrings follow numpydoc, whose cross-references are Sphinx roles (``:func:`x.y```);
MkDocs renders Markdown, where a role would show up verbatim. ``:role:`~a.b.c``` becomes
``c`` in code and ``:role:`a.b.c``` becomes ``a.b.c`` in code, as Sphinx would display them.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _display(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(Extension):
    """Rewrite Sphinx roles in every docstring to inline code."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        """Rewrite the docstring of one object (Griffe ``on_object`` event)."""
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_display, obj.docstring.value)
