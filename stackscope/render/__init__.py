"""Renderers: a Diagnosis in, text for a person or a machine out. No probing, no Textual."""

from __future__ import annotations

FORMATS = ("text", "json", "junit", "nagios")


def render(diagnosis, fmt: str, *, color: bool | None = None, width: int | None = None) -> str:
    if fmt == "json":
        from stackscope.render.jsonout import render_json

        return render_json(diagnosis)
    if fmt == "junit":
        from stackscope.render.junit import render_junit

        return render_junit(diagnosis)
    if fmt == "nagios":
        from stackscope.render.nagios import render_nagios

        return render_nagios(diagnosis)
    from stackscope.render.text import render_text

    return render_text(diagnosis, color=color, width=width)
