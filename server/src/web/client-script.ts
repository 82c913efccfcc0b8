/**
 * The dashboard's one script (served as /assets/dashboard.js): draws the
 * charts (uPlot) from the JSON each page carries and refreshes the page's
 * live region by polling the same URL for JSON, without reloading.
 */
export const DASHBOARD_SCRIPT = `(() => {
  'use strict';
  const POLL_MS = 3000;
  let charts = [];
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  function draw() {
    charts.forEach((c) => c.destroy());
    charts = [];
    document.querySelectorAll('script[data-chart]').forEach((el) => {
      const box = document.getElementById(el.dataset.chart);
      if (!box || typeof uPlot === 'undefined') return;
      const d = JSON.parse(el.textContent);
      const colours = [css('--accent'), css('--ok'), css('--warn'), css('--bad')];
      const fmt = d.unit === 'seconds' ? fmtAge : fmtBytes;
      const axis = { stroke: css('--muted'), grid: { stroke: css('--line') } };
      const opts = {
        width: Math.max(280, box.clientWidth - 16), height: 240,
        scales: { x: { time: true } },
        series: [{}].concat(d.series.map((s, i) => ({ label: s.label, stroke: colours[i % colours.length], width: 2, dash: /^(trend|RPO)$/.test(s.label) ? [6, 4] : undefined, value: (u, v) => v == null ? '–' : fmt(v), points: { show: d.x.length < 60, size: 6 } }))),
        axes: [axis, Object.assign({ size: 84, values: (u, vals) => vals.map(fmt) }, axis)],
      };
      charts.push(new uPlot(opts, [d.x].concat(d.series.map((s) => s.values)), box));
      box.dataset.drawn = String(d.x.length);
    });
  }
  function fmtAge(s) {
    if (s < 120) return Math.round(s) + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  }
  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }
  async function poll() {
    try {
      const res = await fetch(location.pathname + location.search, { headers: { 'X-Keep-Live': '1' }, credentials: 'same-origin', cache: 'no-store' });
      if (res.status === 401) { location.assign('/login'); return; }
      if (res.ok) {
        const body = await res.json();
        const live = document.getElementById('live');
        if (live && live.innerHTML !== body.html) { live.innerHTML = body.html; draw(); }
        const at = document.getElementById('updated');
        if (at) { at.textContent = 'updated ' + new Date(body.generated_at).toLocaleTimeString(); at.dataset.at = body.generated_at; }
      }
    } catch (e) { /* keepd restarting: try again next time */ }
    setTimeout(poll, POLL_MS);
  }
  draw();
  let resized;
  addEventListener('resize', () => { clearTimeout(resized); resized = setTimeout(draw, 200); });
  setTimeout(poll, POLL_MS);
})();
`;
