"""Pages rendered from jinja2 templates in ``seglab/course/templates/``: the feedback pages
(``feedback_page.html.j2``), the similarity report (``similarity_report.html.j2``) and the kit README
(``kit_README.md.j2``).

``.html.j2`` templates are autoescaped (any text given to them comes out as text, never as markup); the
Markdown README is not. Undefined names are errors. Templates are only ever read from the package's
templates folder: text from a submission is passed as a value, never compiled as a template, so
``{{ ... }}`` or ``{% ... %}`` in a student's answer is shown as written.

jinja2 is in the ``tutor`` extra and imported on the first :func:`render`, so importing this module (or
the modules that use it) needs no jinja2.
"""

from __future__ import annotations

from functools import cache

__all__ = ["render"]


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("seglab.course", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), disabled_extensions=("md.j2",),
                                            default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(name: str, **values) -> str:
    """The template ``templates/<name>`` rendered with ``values``."""
    return _environment().get_template(name).render(**values)
