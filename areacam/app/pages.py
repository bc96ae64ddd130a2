"""The HTML pages the application writes (the demo's report.html, ``areacam report``): one style, figures,
and the self-check of :mod:`areacam._util.pages`.

The inline script runs before any image loads: it records image load errors, script errors and
``console.error`` calls, and on ``load`` writes a JSON verdict into ``<pre id="areacam-check">``
(``{"images": N, "loaded": N, "broken": [...], "errors": [...]}``), which ``scripts/check_report.py``
reads from Chromium's ``--dump-dom``.
"""

from __future__ import annotations

import html

from areacam._util.pages import CHECK_BLOCK, CHECK_ID, ERROR_COLLECTOR

__all__ = ["figure_html", "html_page"]


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

_VERDICT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.getAttribute('src'); });
  var out = document.getElementById('CHECK_ID');
  out.textContent = JSON.stringify({images: imgs.length, loaded: imgs.length - broken.length,
                                    broken: broken, errors: window.areacamErrors});
  out.setAttribute('data-done', '1');
});
""".replace("CHECK_ID", CHECK_ID)


def html_page(title: str, body: list[str]) -> str:
    """A whole page in the report style: ``title``, the self-check script, ``body`` and the check block."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{ERROR_COLLECTOR}{_VERDICT}</script>",
        "</head><body>",
    ]
    return "\n".join([*head, *body, CHECK_BLOCK, "</body></html>"]) + "\n"


def figure_html(src: str, title: str, caption: str, anchor: str, table: str = "", link: str | None = None) -> str:
    """One ``<figure>`` of the page: heading, image and caption (all escaped), then ``table``, HTML the
    caller built (e.g. the demo's metric table), and an optional explorer link."""
    more = ""
    if link is not None:
        more = (
            f'<p class="explore"><a href="{html.escape(link)}">Open the region explorer</a>: drag a box or '
            "hover a pixel on the output to see its Grad-CAM (one self-contained page).</p>"
        )
    return (
        f'<figure id="fig-{html.escape(anchor)}"><h3>{html.escape(title)}</h3>'
        f'<img src="{html.escape(src)}" alt="{html.escape(title)}" loading="eager">'
        f"<figcaption>{html.escape(caption)}</figcaption>{table}{more}</figure>"
    )
