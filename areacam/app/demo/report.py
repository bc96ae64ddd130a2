"""``report.html``: a static page of the demo figures grouped by use case, with a self-check script.

The inline script runs before any image loads: it records image load errors, script errors and
``console.error`` calls, and on ``load`` writes a JSON verdict into ``<pre id="areacam-check">``
(``{"images": N, "loaded": N, "broken": [...], "errors": [...]}``), which ``scripts/check_report.py``
reads from Chromium's ``--dump-dom``.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from .common import GROUPS, Figure

__all__ = ["CHECK_ID", "figure_html", "html_page", "write_page", "write_report"]

CHECK_ID = "areacam-check"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } nav a { margin-right: 1em; }
section { margin-top: 2.5em; border-top: 1px solid #ccc; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.92em; color: #444; max-width: 60em; }
.meta { color: #666; font-size: 0.9em; } .skipped { color: #a33; }
#areacam-check { display: none; }
table.trust { border-collapse: collapse; font-size: 0.85em; margin-top: 0.8em; }
table.trust th, table.trust td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
table.trust td:first-child, table.trust td:nth-child(2) { text-align: left; }
table.trust tr.chance td { color: #777; font-style: italic; }
"""

_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? 'failed to load ' + (t.src || t.href) : String(e.message));
  }, true);
  var original = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                     .map(function (i) { return i.getAttribute('src'); });
    var out = document.getElementById('CHECK_ID');
    out.textContent = JSON.stringify({images: imgs.length, loaded: imgs.length - broken.length,
                                      broken: broken, errors: errors});
    out.setAttribute('data-done', '1');
  });
})();
""".replace("CHECK_ID", CHECK_ID)


def html_page(title: str, body: list[str]) -> str:
    """A whole page in the report style: ``title``, the self-check script, ``body`` and the check block."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_SCRIPT}</script>",
        "</head><body>",
    ]
    return "\n".join([*head, *body, f'<pre id="{CHECK_ID}">pending</pre>', "</body></html>"]) + "\n"


def figure_html(
    src: str, title: str, caption: str, anchor: str, table: str = "", link: str | None = None
) -> str:
    """One ``<figure>`` of the page: heading, image and caption (all escaped), then ``table``, HTML the
    caller built (e.g. the demo's metric table), and an optional explorer link."""
    more = ""
    if link is not None:
        more = (f'<p class="explore"><a href="{html.escape(link)}">Open the region explorer</a>: drag a box or '
                "hover a pixel on the output to see its Grad-CAM (one self-contained page).</p>")
    return (
        f'<figure id="fig-{html.escape(anchor)}"><h3>{html.escape(title)}</h3>'
        f'<img src="{html.escape(src)}" alt="{html.escape(title)}" loading="eager">'
        f"<figcaption>{html.escape(caption)}</figcaption>{table}{more}</figure>"
    )


def write_page(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file (never a half-written page)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


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
            parts.append(figure_html("figures/" + fig.file, fig.title, fig.caption, Path(fig.file).stem, fig.table,
                                     fig.link))
        parts.append("</section>")
    if skipped:
        parts.append('<section id="skipped"><h2>Skipped stages</h2><ul>')
        parts += [f'<li class="skipped">{html.escape(k)}: {html.escape(v)}</li>' for k, v in skipped.items()]
        parts.append("</ul></section>")
    parts.append('<section id="run"><h2>Run</h2><ul class="meta">')
    parts += [f"<li>{html.escape(line)}</li>" for line in summary]
    parts.append("</ul></section>")
    return write_page(out / "report.html", html_page("areacam demo report", parts))
