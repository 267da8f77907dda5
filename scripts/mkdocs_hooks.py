"""mkdocs hook: the docstrings' Sphinx roles (:class:`~memcim.x.Y`), which Markdown leaves as
text, rendered as code names: ``~`` keeps the last part, as Sphinx does."""

import re

_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):<code>(~?)([^<]+)</code>")


def _name(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html, **kwargs):
    return _ROLE.sub(_name, html)
