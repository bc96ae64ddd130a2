"""``report.html``: a static page of the demo figures grouped by use case (:mod:`areacam.app.pages`)."""

from __future__ import annotations

import html
from pathlib import Path

from areacam._util.io import atomic_write
from areacam.app.demo.common import GROUPS, Figure
from areacam.app.pages import figure_html, html_page

__all__ = ["write_report"]


def write_report(out: Path, figures: list[Figure], summary: list[str], skipped: dict[str, str]) -> Path:
    """Write ``out/report.html`` referencing each figure under ``figures/``; returns its path."""
    parts = [
        "<h1>areacam demo</h1>",
        '<p class="meta">Explain any region of any dense output. Every figure below was produced by '
        "<code>areacam demo</code> from models trained on embedded data (scikit-learn digits, synthetic "
        "shapes); nothing was downloaded.</p>",
        "<nav>" + "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in GROUPS.items()) + "</nav>",
    ]
    for key, title in GROUPS.items():
        parts.append(f'<section id="{key}"><h2>{html.escape(title)}</h2>')
        for fig in (f for f in figures if f.group == key):
            parts.append(
                figure_html("figures/" + fig.file, fig.title, fig.caption, Path(fig.file).stem, fig.table, fig.link)
            )
        parts.append("</section>")
    if skipped:
        parts.append('<section id="skipped"><h2>Skipped stages</h2><ul>')
        parts += [f'<li class="skipped">{html.escape(k)}: {html.escape(v)}</li>' for k, v in skipped.items()]
        parts.append("</ul></section>")
    parts.append('<section id="run"><h2>Run</h2><ul class="meta">')
    parts += [f"<li>{html.escape(line)}</li>" for line in summary]
    parts.append("</ul></section>")
    return atomic_write(out / "report.html", html_page("areacam demo report", parts))
