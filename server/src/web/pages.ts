import { age, badge, bytes, esc, time } from './layout.js';
import type { alertFigures, auditFigures, fleet, maintenanceFigures, replicaFigures, sourceFigures, storageFigures } from './figures.js';

/** The body of each dashboard page, from figures.ts. Elements tests and people look for carry ids or data- attributes. */

type DrillRow = ReturnType<typeof fleet>['status']['drills'][number];

/** The RTO estimate against its target, coloured: within (ok), above (rto_exceeded), or not known. */
function rtoBadge(d: DrillRow): string {
  const state = d.rto_estimate_s === null || d.rto_target_s === null ? 'unknown' : d.rto_estimate_s <= d.rto_target_s ? 'ok' : 'rto_exceeded';
  return `<span class="rto" data-rto="${state}">${badge(state === 'unknown' ? 'unknown' : state === 'ok' ? 'ok' : 'rto_exceeded')} ${age(d.rto_estimate_s)} / ${age(d.rto_target_s)}</span>`;
}

/** The fleet's Drill (RTO) cell: the last drill's outcome and measured time, the RTO estimate against the target. */
function drillCell(d: DrillRow | undefined): string {
  if (!d) return '<span class="muted">no drill yet</span>';
  return `<span class="last-drill">${badge(d.last_result)} ${age(d.drill_s)}</span> · ${rtoBadge(d)}`;
}

const table = (id: string, head: string[], rows: string[], empty: string) =>
  rows.length ? `<div class="scroll"><table id="${id}"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>` : `<p class="muted" id="${id}">${empty}</p>`;

const card = (label: string, value: string, id?: string) => `<div class="card"${id ? ` id="${id}"` : ''}><b>${value}</b><span>${label}</span></div>`;

/** JSON for a chart, in a script element the browser does not run (CSP allows no inline script). */
const chartData = (id: string, data: unknown) => `<div class="chart" id="${id}"></div><script type="application/json" data-chart="${id}">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>`;

export function fleetPage(f: ReturnType<typeof fleet>): string {
  const late = f.rows.filter((r) => r.source.rpo_state === 'late').length;
  const rows = f.rows.map((r) => {
    const s = r.source;
    const replicas = f.status.replicas.length ? `${f.status.replicas.length} · lag ${age(Math.max(...f.status.replicas.map((x) => x.lag_s)))}` : '–';
    return `<tr data-source="${esc(s.source)}"><td><a href="/sources/${encodeURIComponent(s.source)}">${esc(s.source)}</a></td><td>${esc(s.tier ?? '–')}</td>
<td>${time(s.last_time)}</td><td>${age(s.age_s)} / ${age(s.rpo_s)}</td><td class="rpo">${badge(s.rpo_state)}</td><td class="watch">${r.watch ? badge(r.watch.state) : '<span class="muted">–</span>'}</td>
<td class="run">${r.run ? `${badge(r.run.last_result)} ${r.run.consecutive_failures ? `<span class="muted">${r.run.consecutive_failures}× failed</span>` : ''}` : '<span class="muted">no reports</span>'}</td>
<td>${time(r.next_due)}</td><td>${replicas}</td><td class="drill">${drillCell(f.status.drills.find((d) => d.source === s.source))}</td></tr>`;
  });
  return `<h1>Fleet</h1><div class="cards">${card('sources', String(f.rows.length), 'card-sources')}${card('late against RPO', String(late), 'card-late')}${card('active alerts', String(f.active_alerts), 'card-alerts')}${card('snapshots', String(f.status.snapshots), 'card-snapshots')}${card('watchdog', badge(f.status.watchdog.check.status.toLowerCase()), 'card-check')}</div>
${table('fleet', ['Source', 'Tier', 'Last success', 'Age / RPO', 'RPO', 'Watchdog', 'Last run', 'Next due', 'Replicas', 'Drill (RTO)'], rows, 'No sources yet: the first backup makes one.')}`;
}

export function sourcePage(f: NonNullable<ReturnType<typeof sourceFigures>>): string {
  const s = f.source;
  const snaps = [...f.snapshots].reverse().map((x) => `<tr><td><code>${esc(x.id.slice(0, 12))}</code></td><td>${time(x.time)}</td><td>${bytes(x.bytes)}</td><td>${bytes(x.bytes_sent)}</td><td>${x.dedup_ratio ?? '–'}</td><td>${x.files}</td><td>${esc(x.tags.join(', '))}</td></tr>`);
  const fails = f.failures.map((x) => `<tr><td>${time(x.at)}</td><td>${esc(x.job)}</td><td>${esc(x.kind)}</td><td>${esc(x.error_class ?? '–')}</td><td>${x.attempt}</td></tr>`);
  const chart = { x: f.snapshots.map((x) => Date.parse(x.time) / 1000), series: [{ label: 'size', values: f.snapshots.map((x) => x.bytes) }, { label: 'new data', values: f.snapshots.map((x) => x.bytes_sent) }] };
  const pitr = s.pitr ? `<h2>Point-in-time recovery</h2><p id="pitr">${esc(JSON.stringify(s.pitr))}</p>` : '';
  return `<h1>Source <span id="source-name">${esc(s.source)}</span></h1>
<div class="cards">${card('tier', esc(s.tier ?? '–'))}${card('RPO state', badge(s.rpo_state), 'card-rpo')}${card('age of last success', age(s.age_s))}${card('snapshots', String(s.snapshots), 'card-snapshots')}${card('runs ok / failed', f.run ? `${f.run.runs_success} / ${f.run.runs_failure}` : '–', 'card-runs')}</div>
<h2>Snapshots and sizes</h2>${chartData('chart-snapshots', chart)}
${pitr}<h2>Restore points</h2>${table('snapshots', ['Snapshot', 'Time', 'Size', 'New data', 'Dedup ×', 'Files', 'Tags'], snaps, 'No snapshots.')}
<h2>Run failures</h2>${table('failures', ['Received', 'Job', 'Kind', 'Error class', 'Attempt'], fails, 'No failed runs reported.')}
<h2>Drills</h2>${drillSection(f)}`;
}

function drillSection(f: NonNullable<ReturnType<typeof sourceFigures>>): string {
  const d = f.drill;
  const rows = f.drills.map((x) => `<tr><td>${time(new Date(x.received_ms).toISOString())}</td><td>${badge(x.result)}</td><td>${esc(x.mode)}</td><td><code>${esc(x.snapshot.slice(0, 12))}</code></td><td>${age(x.duration_ms / 1000)}</td><td>${bytes(x.bytes)}</td><td>${x.files_verified}</td><td>${esc(x.error_class ?? '–')}</td></tr>`);
  const cards = d
    ? `<div class="cards">${card('last drill', `${badge(d.last_result)} ${age(d.drill_s)}`, 'card-drill')}${card('RTO estimate / target', rtoBadge(d), 'card-rto')}${card('drills / failed', `${d.drills} / ${d.failures}`, 'card-drills')}${card('drill state', badge(d.state), 'card-drill-state')}</div><p class="muted" id="rto-method">RTO estimate: ${esc(d.rto_method)}.</p>`
    : '';
  return cards + table('drills', ['Received', 'Result', 'Mode', 'Snapshot', 'Took', 'Bytes', 'Files verified', 'Error class'], rows, 'No drills recorded for this source (keep drill).');
}

export function replicasPage(f: ReturnType<typeof replicaFigures>): string {
  const rows = f.replicas.map((r) => `<tr data-replica="${esc(r.replica_id)}"><td>${esc(r.replica_id)}</td><td>${time(r.last_report)}</td><td>${time(r.newest_time)}</td><td>${age(r.lag_s)}</td><td>${badge(r.state)}</td></tr>`);
  const pulls = f.replication.map((r) => `<tr><td>${esc(String((r as { upstream?: string }).upstream ?? '–'))}</td><td>${age(r.lag_s)}</td><td>${badge(r.state)}</td></tr>`);
  const charts = f.replicas.map((r) => {
    const x = r.lag_history.map((p) => p.at_ms / 1000);
    const series = [{ label: 'lag', values: r.lag_history.map((p) => p.lag_ms / 1000) }, ...(r.rpo_s === null ? [] : [{ label: 'RPO', values: x.map(() => r.rpo_s) }])];
    return `<h3>Replica <code>${esc(r.replica_id)}</code>: lag against the RPO, last 7 days</h3>${chartData(`chart-lag-${esc(r.replica_id)}`, { x, series, unit: 'seconds' })}`;
  });
  return `<h1>Replicas</h1><h2>Replicas of this repository</h2>${table('replicas', ['Replica', 'Last report', 'Newest snapshot it holds', 'Lag', 'State'], rows, 'No replica has reported.')}
${charts.join('')}<h2>This repository as a replica</h2>${table('replication', ['Upstream', 'Lag', 'State'], pulls, 'Follows no upstream.')}`;
}

/** The watchdog's usage samples: used, free (of today's total) and the trend its days to full come from. */
function usageChart(f: ReturnType<typeof storageFigures>) {
  const series = [{ label: 'used', values: f.usage.map((x) => x.used) }, { label: 'free', values: f.usage.map((x) => f.total - x.used) }];
  if (f.trend.length) series.push({ label: 'trend', values: f.trend });
  return { x: f.usage.map((x) => x.at_ms / 1000), series, unit: 'bytes', growth_bytes_per_day: f.growth_bytes_per_day };
}

export function storagePage(f: ReturnType<typeof storageFigures>): string {
  const prunes = f.prunes.map((r) => `<tr><td>${time(new Date(r.start_ms).toISOString())}</td><td>${badge(r.outcome)}</td><td>${esc(JSON.stringify(r.result ?? {}))}</td></tr>`);
  return `<h1>Storage</h1><div class="cards">${card('used', bytes(f.used), 'card-used')}${card('free', bytes(f.free), 'card-free')}${card('total', bytes(f.total))}${card('reserve (--min-free)', bytes(f.reserve))}
${card('days to full', f.days_to_full === null ? 'not growing' : String(f.days_to_full), 'card-days')}${card('growth per day', f.growth_bytes_per_day === null ? '–' : bytes(f.growth_bytes_per_day), 'card-growth')}${card('state', badge(f.state), 'card-state')}${card('blobs', String(f.blobs))}${card('packs', String(f.packs))}${card('stored in packs', bytes(f.stored_bytes), 'card-stored')}${card('packs in', esc(f.packs_in), 'card-packs-in')}</div>
<h2>Used and free on the data directory's disk over the last week, with the growth trend</h2>${chartData('chart-storage', usageChart(f))}
<h2>Prune history</h2>${table('prunes', ['Started', 'Outcome', 'Result'], prunes, 'No prune has run under keepd serve.')}`;
}

export function alertsPage(f: ReturnType<typeof alertFigures>): string {
  const row = (a: (typeof f.active)[number]) => `<tr data-alert="${esc(a.id)}"><td>${esc(a.kind)}</td><td>${esc(a.subject)}</td><td>${badge(a.condition)}</td><td>${esc(a.severity)}</td><td>${time(a.started)}</td><td>${time(a.resolved)}</td><td>${a.deliveries.length}</td></tr>`;
  const head = ['Kind', 'Subject', 'Condition', 'Severity', 'Started', 'Resolved', 'Deliveries'];
  return `<h1>Alerts</h1><h2>Active</h2>${table('alerts-active', head, f.active.map(row), 'No active alerts.')}<h2>Resolved (last 7 days)</h2>${table('alerts-resolved', head, f.recent.map(row), 'None resolved lately.')}`;
}

export function auditPage(f: ReturnType<typeof auditFigures>, q: { source?: string; event?: string; since?: string }): string {
  const rows = f.records.map((r) => `<tr><td>${r.seq}</td><td>${time(r.time)}</td><td>${esc(r.event)}</td><td>${esc(r.token ?? '–')}</td><td>${esc(r.peer ?? '–')}</td><td>${esc(r.source ?? '–')}</td><td>${esc(Object.entries(r.fields).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`).join(' '))}</td></tr>`);
  return `<h1>Audit log</h1><form class="filters" method="get" action="/audit"><input name="source" placeholder="source" value="${esc(q.source ?? '')}"><input name="event" placeholder="event (token, session.commit…)" value="${esc(q.event ?? '')}">
<input name="since" placeholder="since (7d, 2026-12-01)" value="${esc(q.since ?? '')}"><button type="submit">Filter</button></form><p class="muted" id="audit-count">${f.total} record(s)${f.total > f.records.length ? `, newest ${f.records.length} shown` : ''}</p>
${table('audit', ['Seq', 'Time', 'Event', 'Token', 'Peer', 'Source', 'Fields'], rows, 'No records match.')}`;
}

export function maintenancePage(f: ReturnType<typeof maintenanceFigures>): string {
  const rows = f.runs.map((r) => `<tr><td>${esc(r.task)}</td><td>${time(new Date(r.start_ms).toISOString())}</td><td>${age((r.end_ms - r.start_ms) / 1000)}</td><td>${badge(r.outcome)}</td><td>${esc(r.error ?? '')}</td></tr>`);
  return `<h1>Maintenance runs</h1>${table('maintenance', ['Task', 'Started', 'Took', 'Outcome', 'Error'], rows, 'No scheduled maintenance has run (keepd.yaml maintenance:).')}`;
}
