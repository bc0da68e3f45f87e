/** The portal's only static files: a style sheet and a small script (served same-origin, so the CSP needs no inline code). */

export const PORTAL_CSS = `body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa;line-height:1.45}
header{background:#1f3a5f;padding:.6rem 1rem}header a{color:#fff;text-decoration:none;font-weight:700}
main{max-width:60rem;margin:0 auto;padding:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}th{background:#eef2f7}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
pre{background:#f0f0f0;padding:.75rem;overflow-x:auto}
.button,button{display:inline-block;background:#1f3a5f;color:#fff;border:0;border-radius:4px;padding:.45rem .9rem;font:inherit;text-decoration:none;cursor:pointer}
a:focus,button:focus{outline:3px solid #f5a623;outline-offset:2px}
.notice{background:#fff3cd;padding:.5rem}
.chart{display:block;max-width:40rem;margin:.5rem 0}.chart .axis{stroke:#555}.chart .tick{font-size:11px;fill:#333}
.chart .bar{fill:#1f3a5f}.chart .limit{stroke:#b00020;stroke-width:2}.chart .pace{stroke:#888;stroke-dasharray:4 4}
.chart polyline.used{fill:none;stroke:#1f3a5f;stroke-width:2}.chart circle.used{fill:#1f3a5f}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.75rem}
`;

/**
 * Copy buttons: a snippet's text, or the current token fetched by a same-origin POST /token with
 * the page's CSRF token (never put in the page or a URL).
 */
export const PORTAL_JS = `'use strict';
(function () {
  function status(text) {
    var el = document.getElementById('copy-status');
    if (el) el.textContent = text;
  }
  function copy(text, what) {
    return navigator.clipboard.writeText(text).then(
      function () { status(what + ' copied.'); },
      function () { status('Could not copy ' + what + '.'); }
    );
  }
  document.addEventListener('click', function (event) {
    var target = event.target;
    if (!(target instanceof HTMLButtonElement)) return;
    var snippet = target.getAttribute('data-copy');
    if (snippet) {
      var pre = document.getElementById(snippet);
      if (pre) copy(pre.textContent || '', 'Snippet');
      return;
    }
    if (target.id === 'copy-token') {
      var meta = document.querySelector('meta[name="csrf-token"]');
      fetch('/token', { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': meta ? meta.getAttribute('content') || '' : '' } })
        .then(function (res) { if (!res.ok) throw new Error(String(res.status)); return res.json(); })
        .then(function (body) { return copy(body.token, 'Token'); })
        .catch(function () { status('Could not fetch the token: sign in again.'); });
    }
  });
})();
`;
