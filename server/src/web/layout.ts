/** The dashboard's page shell, its style sheet (dark and light) and the small formatters every page uses. */

/** HTML-escape any text that came from data (source names, tags, audit fields). */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** An age in seconds as people read it: 45 s, 12 min, 3.5 h, 2.1 d. */
export function age(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} d`;
}

export const time = (iso: string | null | undefined): string => (iso ? `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time>` : '–');

/** A coloured state word: ok (green), warn (amber), bad (red), unknown (grey). */
export function badge(state: string | null | undefined): string {
  const s = state ?? 'unknown';
  const tone = /^(ok|success|delivered|resolved)$/i.test(s) ? 'ok' : /^(late|filling|pending|warning)$/.test(s) ? 'warn' : /^(unknown|none)$/.test(s) ? 'unknown' : 'bad';
  return `<span class="badge ${tone}" data-state="${esc(s)}">${esc(s)}</span>`;
}

export const PAGES: [string, string][] = [
  ['/', 'Fleet'],
  ['/replicas', 'Replicas'],
  ['/storage', 'Storage'],
  ['/alerts', 'Alerts'],
  ['/audit', 'Audit log'],
  ['/maintenance', 'Maintenance'],
];

const CSS = `
:root{color-scheme:light dark;--bg:#f7f7f9;--fg:#1d2129;--muted:#5f6673;--card:#fff;--line:#d9dce3;--ok:#17803d;--warn:#a15c00;--bad:#c62828;--unknown:#6b7280;--accent:#2457c5}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e6e8ec;--muted:#9aa2ae;--card:#1a1e24;--line:#2c323b;--ok:#4cc36e;--warn:#f0a640;--bad:#ff6b6b;--unknown:#8b93a0;--accent:#7aa2ff}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.2rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line);background:var(--card)}
header strong{font-size:1.05rem}nav{display:flex;flex-wrap:wrap;gap:.2rem .9rem}nav a{color:var(--accent);text-decoration:none}nav a.here{font-weight:700;text-decoration:underline}
header form{margin-left:auto}main{padding:1rem;max-width:1400px;margin:0 auto}
h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.7rem;margin-bottom:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}.card>b{display:block;font-size:1.3rem}.card>span{color:var(--muted);font-size:.85rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line)}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);white-space:nowrap}th{color:var(--muted);font-weight:600;font-size:.85rem}
.badge{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:.85rem;font-weight:600;color:#fff}.badge.ok{background:var(--ok)}.badge.warn{background:var(--warn)}.badge.bad{background:var(--bad)}.badge.unknown{background:var(--unknown)}
.muted{color:var(--muted)}.chart{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.5rem;min-height:260px}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:.8rem}input,button{font:inherit;padding:.3rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg)}
button{cursor:pointer}.login{max-width:420px;margin:12vh auto;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1.4rem}.login input{width:100%;margin:.5rem 0 1rem}
.error{color:var(--bad)}a{color:var(--accent)}
@media (max-width:640px){main{padding:.6rem}th,td{padding:.3rem .4rem}.cards{grid-template-columns:repeat(2,1fr)}}
`;

/** No inline script (the data for charts travels as JSON in a non-executed script element); styles inline (uPlot sets them). */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** A signed-in page: header with the pages and logout (its CSRF token), the live region, the scripts. */
export function shell(o: { title: string; path: string; csrf: string; role: string; body: string }): string {
  const nav = PAGES.map(([href, label]) => `<a href="${href}"${o.path === href ? ' class="here"' : ''}>${label}</a>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(o.title)} · keepd</title><style>${CSS}</style><link rel="stylesheet" href="/assets/uplot.css"></head><body>
<header><strong>keepd</strong><nav>${nav}</nav><form method="post" action="/logout"><input type="hidden" name="csrf" value="${esc(o.csrf)}"><span class="muted">${esc(o.role)}</span> <button type="submit" id="logout">Sign out</button></form></header>
<main><div id="live">${o.body}</div><p class="muted" id="updated">live: updates every few seconds</p></main>
<script src="/assets/uplot.js"></script><script src="/assets/dashboard.js"></script></body></html>`;
}

export function loginPage(message?: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sign in · keepd</title><style>${CSS}</style></head><body><form class="login" method="post" action="/login">
<h1>keepd dashboard</h1><p class="muted">Sign in with an admin or viewer token (keepd token create --role viewer).</p>
${message ? `<p class="error" id="login-error">${esc(message)}</p>` : ''}<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" required><button type="submit">Sign in</button></form></body></html>`;
}
