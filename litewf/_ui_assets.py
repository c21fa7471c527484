"""The dashboard's stylesheet and script, served as files by ``_ui`` (nothing is loaded
from elsewhere).

The script opens ``/events`` (Server-Sent Events) and, when a change concerns what the
page shows, fetches the page's live part again (``?partial=1``, HTML the server
escaped) and puts it in place: no reload, no data handled in the browser.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a.brand{color:#fff;font-weight:700;text-decoration:none}
main{padding:12px 16px}h1{font-size:20px;word-break:break-all}h2{font-size:16px;margin:18px 0 6px}
h3{font-size:14px;margin:8px 0 4px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #e3e6eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}table.summary{width:auto}
pre{margin:0;white-space:pre-wrap;word-break:break-word;max-height:16em;overflow:auto}
.muted{color:#6b7385}.empty{color:#6b7385;font-style:italic}.error{color:#b3261e}
.status{padding:1px 6px;border-radius:8px;font-size:12px;font-weight:600;background:#e3e6eb}
.s-SUCCESS{background:#d5f2dc;color:#1e6b34}.s-ERROR,.s-MAX_RECOVERY_ATTEMPTS_EXCEEDED{background:#fadad7;color:#9b1c13}
.s-PENDING{background:#dbe8fd;color:#1b4fb0}.s-ENQUEUED{background:#fdf0cf;color:#7a5800}
.s-CANCELLED{background:#e8e3f3;color:#4b3b7a}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:10px}
.filters label{display:flex;flex-direction:column;font-size:12px;color:#6b7385}
.pager{margin:8px 0;display:flex;gap:12px}
.actions{display:flex;gap:12px;margin:10px 0;flex-wrap:wrap}.action{display:flex;gap:6px;align-items:end}
.action label{display:flex;flex-direction:column;font-size:12px;color:#6b7385}
.track{background:#eef0f4;height:10px;width:220px;border-radius:3px}
.bar{height:10px;border-radius:3px;background:#3b7be0}.bar.o-error{background:#d2453a}
.bar.o-waiting{background:#e0b83b}.o-error{color:#b3261e}.o-waiting{color:#7a5800}
.stream ol{background:#fff;margin:0;padding:4px 4px 4px 40px}
"""

SCRIPT = """
(function () {
  const body = document.body, state = document.getElementById("live-state");
  const live = document.getElementById("live");
  if (!live || !window.EventSource) { if (state) state.textContent = ""; return; }
  const mine = body.dataset.workflow;
  let timer = null, busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      const got = await fetch(url, {headers: {"Accept": "text/html"}});
      if (got.ok) { live.innerHTML = await got.text(); }
    } finally {
      busy = false;
      if (again) { again = false; schedule(); }
    }
  }
  function schedule() { if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, 150); }
  function concerns(ids) {
    if (!mine || ids.all) return true;
    if (ids.ids.indexOf(mine) >= 0) return true;
    return Array.from(live.querySelectorAll("a[href^='/workflow?']")).some(
      (a) => ids.ids.indexOf(new URL(a.href).searchParams.get("id")) >= 0);
  }
  const source = new EventSource("/events");
  source.addEventListener("open", () => { state.textContent = "live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; });
  source.addEventListener("change", (e) => {
    if (concerns(JSON.parse(e.data))) schedule();
  });
})();
"""
