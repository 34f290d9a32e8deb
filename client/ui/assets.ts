/**
 * The UI's only script and stylesheet, served from /static so the CSP can say `script-src 'self'` and
 * `style-src 'self'`: no inline code runs, so markup that slipped past escaping still cannot execute.
 * Kept as strings (the build is plain tsc, which copies no assets); URLs carry a content hash for long caching.
 */
import { createHash } from 'node:crypto';

const CSS = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafafa}
header{background:#123;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header a{color:#fff}header .who{margin-left:auto}header form{display:inline}
main{padding:1rem;max-width:72rem;margin:auto}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
code{font-size:.85em;word-break:break-all}
.state-succeeded{color:#1a7f37}.state-failed,.state-cancelled{color:#cf222e}.state-waiting,.state-running{color:#9a6700}
.notice{padding:.6rem .8rem;border-radius:4px;margin:.8rem 0}.ok{background:#dafbe1}.err{background:#ffebe9}
form.decide{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;background:#fff;padding:.8rem;border:1px solid #ddd}
textarea{min-width:18rem;min-height:3rem}button{padding:.4rem .9rem;font-size:1rem}
.filters{display:flex;gap:.8rem;align-items:flex-end;margin-bottom:1rem;flex-wrap:wrap}
@media (max-width:40rem){table,thead,tbody,tr,th,td{display:block}thead{display:none}td{border:0;padding:.1rem .5rem}tr{border-bottom:1px solid #ccc;padding:.4rem 0}}
`;

// Live updates only replace #status with HTML the server rendered (and escaped); messages go in as text.
const RELEASE_JS = `(function () {
  'use strict';
  var region = document.getElementById('status');
  if (region && window.EventSource) {
    var es = new EventSource(location.pathname + '/events');
    es.addEventListener('status', function (e) { region.innerHTML = JSON.parse(e.data); });
  }
  var form = document.querySelector('form[data-live]');
  if (!form) return;
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var data = new URLSearchParams(new FormData(form));
    if (e.submitter) data.set(e.submitter.name, e.submitter.value);
    fetch(form.action, { method: 'POST', body: data, headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        var p = document.createElement('p');
        p.className = 'notice ' + (j.ok ? 'ok' : 'err');
        p.textContent = j.message;
        var box = document.getElementById('message');
        box.replaceChildren(p);
        if (j.ok) document.getElementById('decide').remove();
      });
  });
})();
`;

const asset = (name: string, type: string, body: string) => {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { path: `/static/${name}`, url: `/static/${name}?v=${hash}`, type, body };
};

export const ASSETS = {
  css: asset('app.css', 'text/css; charset=utf-8', CSS),
  releaseJs: asset('release.js', 'text/javascript; charset=utf-8', RELEASE_JS),
};
