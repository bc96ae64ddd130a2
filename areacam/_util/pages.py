"""The self-check every HTML page areacam writes carries (the demo's report.html, the region explorer).

From the moment the page starts loading, :data:`ERROR_COLLECTOR` gathers failed loads and
``console.error`` calls into ``window.areacamErrors``; the page then writes its verdict, as JSON, into
the ``<pre id="areacam-check">`` block (:data:`CHECK_BLOCK`) and marks it ``data-done``, which
``scripts/check_report.py`` reads in headless Chromium.
"""

from __future__ import annotations

__all__ = ["CHECK_BLOCK", "CHECK_ID", "ERROR_COLLECTOR"]

CHECK_ID = "areacam-check"
CHECK_BLOCK = f'<pre id="{CHECK_ID}">pending</pre>'

ERROR_COLLECTOR = """
(function () {
  var errors = [];
  window.areacamErrors = errors;
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? 'failed to load ' + (t.src || t.href) : String(e.message));
  }, true);
  var original = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
})();
"""
