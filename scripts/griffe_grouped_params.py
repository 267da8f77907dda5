"""griffe extension for the documentation site: our docstrings group parameters that share a
description ("x, y: inputs and labels"); Google-style parsers read that as one unknown name.
Before parsing, each grouped entry in an ``Args:`` / ``Attributes:`` section is split into one
entry per name with the shared description. The source is not changed."""

from __future__ import annotations

import re

import griffe

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Attributes|Parameters):\s*$")
_GROUPED = re.compile(r"^(\s+)(\w+(?:, \w+)+): (.*)$")


def split_grouped(text: str) -> str:
    """``text`` with every grouped entry of an argument or attribute section split."""
    out, section_indent, in_section = [], 0, False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if header:
            in_section, section_indent = True, len(header.group(1))
            out.append(line)
            i += 1
            continue
        if in_section and line.strip() and len(line) - len(line.lstrip()) <= section_indent:
            in_section = False
        grouped = _GROUPED.match(line) if in_section else None
        if not grouped:
            out.append(line)
            i += 1
            continue
        indent, names, first = grouped.groups()
        body = [first]
        i += 1
        while (
            i < len(lines)
            and lines[i].strip()
            and (len(lines[i]) - len(lines[i].lstrip()) > len(indent))
        ):
            body.append(lines[i].strip())
            i += 1
        for name in names.split(", "):
            out.append(f"{indent}{name}: {' '.join(body)}")
    return "\n".join(out)


class GroupedParams(griffe.Extension):
    """Split grouped parameter entries of every docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = split_grouped(obj.docstring.value)
