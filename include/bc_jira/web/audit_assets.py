"""The audit page's static parts: its style sheet and its one small script (no stored data in either)."""

from __future__ import annotations

# Airflow 3.3 sandboxes external views "allow-scripts allow-same-origin allow-forms allow-downloads": a
# target=_top / target=_blank link clicked in the iframe is blocked. The UI is the same origin, so the click
# is re-issued by an anchor in the UI's own document (not sandboxed; the user's click activated it too).
LINKS_JS = """(function () {
  if (window.top === window) return;
  var topDoc;
  try { topDoc = window.top.document; } catch (e) { return; }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest('a[target="_top"], a[target="_blank"]');
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    var proxy = topDoc.createElement("a");
    proxy.href = a.href;
    proxy.target = a.target === "_blank" ? "_blank" : "_self";
    proxy.rel = a.rel || "";
    proxy.style.display = "none";
    topDoc.body.appendChild(proxy);
    proxy.click();
    proxy.remove();
  });
})();
"""

_CSS = """
body{font:14px/1.4 system-ui,Segoe UI,Roboto,sans-serif;margin:16px;color:#1a202c;background:#fff}
h1{font-size:20px;margin:0 0 4px}
p.sub{margin:0 0 12px;color:#4a5568}
form{display:flex;gap:12px;align-items:center;margin:0 0 12px}
select{padding:4px 6px;border:1px solid #cbd5e0;border-radius:4px}
p.pager{margin:12px 0;display:flex;gap:12px}
input[type=search]{width:340px;padding:5px 8px;border:1px solid #cbd5e0;border-radius:4px}
button{padding:5px 12px;border:1px solid #3182ce;background:#3182ce;color:#fff;border-radius:4px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{background:#f7fafc;font-weight:600;position:sticky;top:0}
tr.err td{background:#fff5f5}
td.nw{white-space:nowrap}
td.err{color:#c53030;max-width:420px;white-space:pre-wrap;word-break:break-word}
.muted{color:#718096;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#edf2f7}
.b-linked{background:#ebf8ff;color:#2b6cb0}.b-resolved,.b-written_back,.b-done{background:#f0fff4;color:#276749}
.b-ok{background:#f0fff4;color:#276749}.b-failed,.b-error{background:#fed7d7;color:#9b2c2c}.b-pending{background:#fefcbf;color:#975a16}
code{font-size:12px;background:#f7fafc;padding:1px 4px;border-radius:3px}
a{color:#2b6cb0}
"""
