import { parseArgs } from 'node:util';
import { parseDurationMs, DEFAULT_REPACK_BELOW, DEFAULT_UNIT_DIR, formatAlerts, formatInstall, formatKeepdCheck, formatKeepdForget, formatPrune, formatStatus, formatTokens, installJson, exitOnInterrupt, formatVersionReport, helpFor, KeepError, ManualClock, parseChunkerSizes, parseGroupBy, parseTier, processClock, reportExitError, Repository, versionReport } from '@keep/core';
import { TokenStore } from '../auth/tokens.js';
import { checkTokenRequest } from '../auth/token-request.js';
import { checkFailure, runCheck } from '../commands/check.js';
import { salvageCopies } from '../commands/salvage-copies.js';
import { FORGET_FLAGS, policyFromFlags, runForget } from '../commands/forget.js';
import { runStatus } from '../commands/status.js';
import { alertsReport } from '../control/alerts.js';
import { drReport } from '../report/dr-report.js';
import { formatReportMarkdown } from '../report/report-markdown.js';
import { DEFAULT_KEEPD_CONFIG, KeepdConfig, KeepdConfigError, loadKeepdConfig } from '../control/config.js';
import { runSync, syncFailure } from '../sync/run.js';
import { promote } from '../role.js';
import { serve } from '../serve.js';
import { tlsInit } from '../tls.js';
import { keepdRepoOptions, lockDataDir, requireRepository } from '../data-lock.js';
import { ensureOwnership } from '../ownership.js';
import { attachObjectStorage, initInObjectStorage, registerObjectStorage } from '../object-storage.js';
import { DEFAULT_KEEPD_DATA, DEFAULT_KEEPD_USER, installKeepd } from '../install/install-keepd.js';
import { USAGE } from './usage.js';
import { audit, LOCAL } from '../audit/log.js';
import { auditedPrune } from '../audit/events.js';
import { formatAuditRecord, listAudit, parseSince } from '../audit/list.js';
import { DEFAULT_AUDIT_RETENTION, parseAuditRetention } from '../audit/retention.js';
import { auditDamage, formatVerify, verifyAudit } from '../audit/verify.js';
import { replicaCheckpoints } from '../audit/replicated.js';

/** Lines of a report, or nothing when it has none. */
function printText(text: string): void {
  if (text) console.log(text);
}

function out(json: boolean | undefined, value: unknown, human: () => void): void {
  if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else human();
}

type Opt = { type: 'string' | 'boolean'; multiple?: boolean };

function args(argv: string[], extra: Record<string, Opt> = {}) {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { data: { type: 'string' }, json: { type: 'boolean' }, ...extra }, strict: true, allowPositionals: true });
    if (!values.data) throw new KeepError('INVALID_ARGUMENT', '--data DIR is required');
    return { ...values, positionals } as Record<string, string | boolean | string[] | undefined> & { data: string; json?: boolean; positionals: string[] };
  } catch (e) {
    if (e instanceof KeepError) throw e;
    throw new KeepError('INVALID_ARGUMENT', (e as Error).message.split('\n')[0]);
  }
}

/** keepd.yaml for serve; null (every problem on stderr, exit 2) when it is not valid. */
function configOrProblems(file: string): KeepdConfig | null {
  try {
    return loadKeepdConfig(file);
  } catch (e) {
    if (!(e instanceof KeepdConfigError)) throw e;
    for (const p of e.problems) process.stderr.write(`keepd: error: ${p}\n`);
    process.exitCode = 2;
    return null;
  }
}

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  async init(argv) {
    const a = args(argv, { 'chunk-min': { type: 'string' }, 'chunk-avg': { type: 'string' }, 'chunk-max': { type: 'string' }, store: { type: 'string' }, 's3-path-style': { type: 'boolean' }, attach: { type: 'boolean' } });
    const chunker = parseChunkerSizes(a['chunk-min'] as string | undefined, a['chunk-avg'] as string | undefined, a['chunk-max'] as string | undefined);
    const store = a.store as string | undefined;
    if (a['s3-path-style'] && !store) throw new KeepError('INVALID_ARGUMENT', '--s3-path-style goes with --store s3://bucket/prefix');
    if (a.attach) {
      if (!store) throw new KeepError('INVALID_ARGUMENT', '--attach goes with --store s3://bucket/prefix (the repository already in the bucket)');
      const repo = await attachObjectStorage(a.data, store, { pathStyle: Boolean(a['s3-path-style']) });
      try {
        // the packs know no owners: ownership comes back from the snapshots, as after keepd rebuild-index
        const owners = await ensureOwnership(repo);
        const r = { repository: repo.config.id, data: a.data, store, attached: true, snapshots: repo.snapshots().length, packs: repo.packCount(), blobs: repo.blobCount(), owned_blobs: owners.owned };
        out(a.json, r, () => console.log(`attached ${a.data} to repository ${r.repository} in ${store}: ${r.snapshots} snapshot(s), index rebuilt (${r.blobs} blobs in ${r.packs} packs); tokens, alerts and history start empty: create tokens with keepd token create`));
      } finally {
        await repo.close();
      }
      return;
    }
    const repo = store ? await initInObjectStorage(a.data, store, { pathStyle: Boolean(a['s3-path-style']), chunker }) : await Repository.init(a.data, { chunker });
    try {
      out(a.json, { repository: repo.config.id, data: a.data, chunker: repo.config.chunker, ...(store ? { store } : {}) }, () =>
        console.log(`created repository ${repo.config.id} in ${store ?? a.data}${store ? ` (local index and state in ${a.data})` : ''}; the first agent's \`keep init\` adds its key`),
      );
    } finally {
      await repo.close();
    }
  },
  async serve(argv) {
    const a = args(argv, { listen: { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, metrics: { type: 'string' }, http: { type: 'string' }, upstream: { type: 'string' }, 'sync-interval': { type: 'string' }, 'sync-replicas': { type: 'string' }, 'sync-timeout': { type: 'string' }, 'sync-all': { type: 'boolean' }, 'min-free': { type: 'string' }, 'max-connections': { type: 'string' }, insecure: { type: 'boolean' }, config: { type: 'string' }, 'audit-retention': { type: 'string' } });
    const config = typeof a.config === 'string' ? configOrProblems(a.config) : undefined;
    if (config === null) return;
    if (a.insecure) process.env.KEEP_INSECURE = '1';
    const maxConnections = a['max-connections'] === undefined ? undefined : Number(a['max-connections']);
    if (maxConnections !== undefined && !(Number.isInteger(maxConnections) && maxConnections > 0)) throw new KeepError('INVALID_ARGUMENT', '--max-connections takes a count (> 0)');
    const syncReplicas = a['sync-replicas'] === undefined ? 0 : Number(a['sync-replicas']);
    const syncTimeout = a['sync-timeout'] === undefined ? 60 : Number(a['sync-timeout']);
    if (!Number.isInteger(syncReplicas) || syncReplicas < 0 || !(syncTimeout > 0)) throw new KeepError('INVALID_ARGUMENT', '--sync-replicas takes a count, --sync-timeout seconds');
    const interval = a['sync-interval'] === undefined ? undefined : Number(a['sync-interval']);
    if (interval !== undefined && !(interval > 0)) throw new KeepError('INVALID_ARGUMENT', '--sync-interval takes seconds (> 0)');
    // Handlers first: a stop signal that lands while serve() starts (the tests send one as soon as
    // 'listening' is printed) would otherwise take the default action and kill keepd mid-write.
    const signalled = new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    const server = await serve({
      data: a.data,
      listen: (a.listen as string | undefined) ?? '127.0.0.1:7420',
      tlsCert: a['tls-cert'] as string | undefined,
      tlsKey: a['tls-key'] as string | undefined,
      metrics: a.metrics as string | undefined,
      http: a.http as string | undefined,
      upstream: a.upstream as string | undefined,
      syncIntervalS: interval,
      syncReplicas,
      syncTimeoutS: syncTimeout,
      syncTiers: a['sync-all'] ? 'all' : ['critical'],
      minFree: a['min-free'] as string | undefined,
      maxConnections,
      config,
      auditRetentionMs: parseAuditRetention((a['audit-retention'] as string | undefined) ?? DEFAULT_AUDIT_RETENTION),
    });
    await signalled;
    await server.shutdown();
  },
  async token(argv) {
    const [sub, ...rest] = argv;
    const a = args(rest, { role: { type: 'string' }, source: { type: 'string', multiple: true }, 'all-sources': { type: 'boolean' }, dedup: { type: 'string' } });
    await Repository.using(a.data, async (repo) => {
      const store = new TokenStore(repo);
      if (sub === 'create') {
        const grant = checkTokenRequest({ role: a.role as string | undefined, sources: (a.source as string[] | undefined) ?? [], allSources: Boolean(a['all-sources']), dedup: a.dedup as string | undefined });
        const { token, record } = await store.create(grant.role, grant);
        // The token is shown once, here; the server keeps only its hash.
        out(a.json, { token, id: record.id, role: record.role, sources: record.sources, dedup: record.dedup }, () => console.log(token));
      } else if (sub === 'list') {
        const rows = store.list().map(({ hash: _hash, ...r }) => r);
        out(a.json, rows, () => printText(formatTokens(rows)));
      } else if (sub === 'revoke') {
        const id = a.positionals[0];
        if (!id) throw new KeepError('INVALID_ARGUMENT', 'usage: keepd token revoke ID --data DIR');
        await store.revoke(id);
        out(a.json, { revoked: id }, () => console.log(`revoked ${id}`));
      } else throw new KeepError('INVALID_ARGUMENT', 'usage: keepd token create|list|revoke --data DIR');
    }, keepdRepoOptions(a.data));
  },
  async tls(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'init') throw new KeepError('INVALID_ARGUMENT', 'usage: keepd tls init --data DIR [--host NAME]...');
    const a = args(rest, { host: { type: 'string', multiple: true } });
    const r = tlsInit(a.data, (a.host as string[] | undefined) ?? []);
    out(a.json, r, () => console.log(`CA ${r.ca}\ncertificate ${r.cert}\nkey ${r.key}\nserve with: keepd serve --data ${a.data} --tls-cert ${r.cert} --tls-key ${r.key}; agents set KEEP_CA=${r.ca} and KEEP_REPO=grpcs://HOST:PORT`));
  },
  async check(argv) {
    const a = args(argv, { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } });
    const subsetArg = a['read-data-subset'];
    const subset = typeof subsetArg === 'string' ? Number(subsetArg.replace(/%$/, '')) : undefined;
    if (subset !== undefined && !(subset > 0 && subset <= 100)) throw new KeepError('INVALID_ARGUMENT', '--read-data-subset takes a percentage in (0, 100]');
    const r = await runCheck({ data: a.data, readData: Boolean(a['read-data']), readDataSubset: subset });
    out(a.json, r, () => console.log(formatKeepdCheck(r)));
    if (!r.ok) throw checkFailure(r.errors);
  },
  async forget(argv) {
    const a = args(argv, FORGET_FLAGS);
    const r = await runForget(a.data, {
      source: a.source as string | undefined,
      groupBy: parseGroupBy(a['group-by'] as string | undefined),
      policy: policyFromFlags(a),
      tier: typeof a.tier === 'string' ? parseTier(a.tier) : undefined,
      dryRun: Boolean(a['dry-run']),
    });
    const pruned = a.prune && !a['dry-run'] ? await Repository.using(a.data, (repo) => repo.asWriter('keepd prune', () => auditedPrune(repo)), keepdRepoOptions(a.data)) : undefined;
    const report = pruned ? { ...r, prune: pruned } : r;
    out(a.json, report, () => printText(formatKeepdForget(report, Boolean(a['dry-run']))));
    if (r.groups.length === 0 && r.skipped.length) throw new KeepError('INVALID_ARGUMENT', 'no retention policy: give --keep-last/--keep-daily/... or --tier');
  },
  async prune(argv) {
    const a = args(argv, { 'dry-run': { type: 'boolean' }, 'repack-below': { type: 'string' }, 'delete-delay': { type: 'string' } });
    const below = a['repack-below'] === undefined ? DEFAULT_REPACK_BELOW : Number(a['repack-below']);
    if (!(below >= 0 && below <= 1)) throw new KeepError('INVALID_ARGUMENT', '--repack-below takes a fraction from 0 to 1');
    const deleteDelayMs = a['delete-delay'] === undefined ? undefined : parseDurationMs(a['delete-delay'] as string, '--delete-delay');
    const dryRun = Boolean(a['dry-run']);
    const prune = (repo: Repository) => auditedPrune(repo, { dryRun, repackBelow: below, deleteDelayMs });
    // a dry run writes nothing to the storage: it needs no writer lease
    const r = await Repository.using(a.data, (repo) => (dryRun ? prune(repo) : repo.asWriter('keepd prune', () => prune(repo))), keepdRepoOptions(a.data));
    out(a.json, r, () => console.log(formatPrune(r)));
  },
  async sync(argv) {
    const a = args(argv, { from: { type: 'string' }, source: { type: 'string' }, insecure: { type: 'boolean' }, store: { type: 'string' }, 's3-path-style': { type: 'boolean' } });
    if (a.insecure) process.env.KEEP_INSECURE = '1';
    if (typeof a.from !== 'string') throw new KeepError('INVALID_ARGUMENT', 'keepd sync needs --from grpc://HOST:PORT (token from KEEP_TOKEN, CA from KEEP_CA)');
    const store = a.store as string | undefined;
    if (a['s3-path-style'] && !store) throw new KeepError('INVALID_ARGUMENT', '--s3-path-style goes with --store s3://bucket/prefix');
    const r = await runSync(a.data, a.from, a.source as string | undefined, process.env, store ? { url: store, pathStyle: Boolean(a['s3-path-style']) } : undefined);
    out(a.json, r, () => {
      console.log(`synced ${r.snapshots_synced.length} snapshot(s) from ${r.upstream}: fetched ${r.blobs_fetched} blobs (${r.bytes_fetched} bytes), ${r.blobs_present} already here, ${r.duration_s.toFixed(2)} s`);
      for (const f of r.snapshots_failed) console.log(`failed ${f.id}: ${f.error}`);
      console.log(r.lag_s > 0 ? `lag: ${r.lag_s} s behind, ${r.snapshots_pending} snapshot(s) pending` : 'caught up');
    });
    const failure = syncFailure(r);
    if (failure) throw failure;
  },
  async promote(argv) {
    const a = args(argv);
    const r = promote(a.data, processClock());
    const out1 = { promoted: true, already: r.already, previous_upstream: r.upstream, promoted_at: r.promoted_at, data: a.data };
    // Audited, and this line on stderr (keepd's log format) besides role.json.
    if (!r.already) await Repository.using(a.data, async (repo) => void (await audit(repo).record('promote', LOCAL, { previous_upstream: r.upstream })), keepdRepoOptions(a.data));
    if (!r.already) process.stderr.write(JSON.stringify({ level: 40, time: processClock().now(), service: 'keepd', msg: 'promoted', data: a.data, previous_upstream: r.upstream, promoted_at: r.promoted_at }) + '\n');
    out(a.json, out1, () => console.log(r.already ? `${a.data} was promoted already (${r.promoted_at}); it followed ${r.upstream}` : `promoted ${a.data}: it no longer follows ${r.upstream} and takes backups; point agents at it (KEEP_REPO)`));
  },
  async audit(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'verify') {
      const a = args(rest, { against: { type: 'string' } });
      const r = verifyAudit(a.data, a.against === undefined ? undefined : replicaCheckpoints(a.against as string));
      out(a.json, r, () => console.log(formatVerify(r)));
      if (!r.ok) throw auditDamage(r);
      return;
    }
    if (sub !== 'list') throw new KeepError('INVALID_ARGUMENT', 'keepd audit takes verify or list');
    const a = args(rest, { since: { type: 'string' }, source: { type: 'string' }, event: { type: 'string' } });
    const records = listAudit(a.data, { since: a.since === undefined ? undefined : parseSince(a.since as string, processClock()), source: a.source as string | undefined, event: a.event as string | undefined });
    out(a.json, records, () => records.forEach((rec) => console.log(formatAuditRecord(rec))));
  },
  async status(argv) {
    const a = args(argv, { check: { type: 'boolean' } });
    const s = await runStatus(a.data);
    if (a.check) {
      // monitoring-plugin semantics: one line, exit 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN
      out(a.json, s.watchdog.check, () => console.log(s.watchdog.check.line));
      process.exitCode = s.watchdog.check.code;
      return;
    }
    out(a.json, s, () => console.log(formatStatus(s)));
  },
  async report(argv) {
    const a = args(argv, { since: { type: 'string' }, format: { type: 'string' } });
    const format = a.json ? 'json' : ((a.format as string | undefined) ?? 'md');
    if (format !== 'md' && format !== 'json') throw new KeepError('INVALID_ARGUMENT', `--format takes md or json, not ${format}`);
    // one instant: the window's end, and what --since counts back from
    const clock = new ManualClock(processClock().now());
    const since = parseSince((a.since as string | undefined) ?? '30d', clock);
    const r = await Repository.using(a.data, async (repo) => drReport(repo, clock, since), keepdRepoOptions(a.data, { clock }));
    out(format === 'json', r, () => console.log(formatReportMarkdown(r)));
  },
  async alerts(argv) {
    const a = args(argv);
    const r = await Repository.using(a.data, async (repo) => alertsReport(repo), keepdRepoOptions(a.data));
    out(a.json, r, () => console.log(formatAlerts(r)));
  },
  async 'check-config'(argv) {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, json: { type: 'boolean' } }, strict: true });
    const file = values.config ?? DEFAULT_KEEPD_CONFIG;
    try {
      const c = loadKeepdConfig(file);
      const receivers = (c.alerts?.receivers ?? []).map((r) => r.name);
      out(values.json, { ok: true, file, sources: c.sources?.length ?? 0, maintenance: Object.keys(c.maintenance ?? {}), receivers }, () =>
        console.log(`${file}: ok (${c.sources?.length ?? 0} source polic(ies), maintenance: ${Object.keys(c.maintenance ?? {}).join(', ') || 'none'}, alert receivers: ${receivers.join(', ') || 'none'})`),
      );
    } catch (e) {
      if (!(e instanceof KeepdConfigError)) throw e;
      out(values.json, { ok: false, file, problems: e.problems }, () => e.problems.forEach((p) => console.error(p)));
      process.exitCode = 2;
    }
  },
  async install(argv) {
    // --data is optional here: the unit names the data directory, keepd init makes it
    const a = args(dataDirOf(argv) ? argv : [...argv, '--data', DEFAULT_KEEPD_DATA], { user: { type: 'string' }, listen: { type: 'string' }, prefix: { type: 'string' }, 'unit-dir': { type: 'string' }, 'dry-run': { type: 'boolean' } });
    const dryRun = Boolean(a['dry-run']);
    const r = installKeepd({ data: a.data, user: (a.user as string | undefined) ?? DEFAULT_KEEPD_USER, listen: (a.listen as string | undefined) ?? '127.0.0.1:7420', prefix: a.prefix as string | undefined, unitDir: (a['unit-dir'] as string | undefined) ?? DEFAULT_UNIT_DIR, dryRun });
    out(a.json, installJson(r, dryRun), () => console.log(formatInstall(r, dryRun)));
  },
  async 'rebuild-index'(argv) {
    const a = args(argv, { 'from-trailers': { type: 'boolean' } });
    // Never opens the current index (it may be damaged), and never under a running keepd (which would go on writing to the old file).
    const lock = lockDataDir(a.data, 'rebuild-index');
    try {
      const salvaged = salvageCopies(a.data);
      if (salvaged.lost) process.stderr.write(`keepd: warning: the old index could not be read (${salvaged.lost}): sources' own copies of shared blobs are forgotten, and the first stored bytes of each blob serve every source\n`);
      const rebuilt = await Repository.rebuild(a.data, { copies: salvaged.copies, fromTrailers: Boolean(a['from-trailers']) });
      // The packs know no owners: ownership comes back from the snapshots.
      const owners = await Repository.using(a.data, (repo) => ensureOwnership(repo), keepdRepoOptions(a.data));
      const r = { ...rebuilt, owned_blobs: owners.owned };
      out(a.json, r, () =>
        console.log(
          `rebuilt index: ${r.blobs} blobs from ${r.packs} packs (${r.packs_from_segments} from ${r.segments} index segment(s), ${r.packs_from_trailers} from their trailers)${r.damaged_packs.length ? `; ${r.damaged_packs.length} damaged pack(s) skipped` : ''}${r.damaged_segments.length ? `; ${r.damaged_segments.length} damaged index segment(s) ignored` : ''}; ownership of ${owners.owned} blobs derived from ${owners.sources} source(s)` +
            (r.replaced ? `; the old index is now ${r.replaced} (delete it when you no longer need it)` : ''),
        ),
      );
    } finally {
      lock.release();
    }
  },
};

/** Commands that work on an existing repository: a missing one is named, with its cure (keepd init, not keep init), before they run. (sync creates a replica's.) */
const NEEDS_REPOSITORY = new Set(['serve', 'token', 'check', 'forget', 'prune', 'promote', 'status', 'alerts', 'report', 'rebuild-index', 'audit']);

function dataDirOf(argv: string[]): string | undefined {
  const i = argv.findIndex((a) => a === '--data' || a.startsWith('--data='));
  if (i < 0) return undefined; // args() reports the missing --data
  return argv[i].startsWith('--data=') ? argv[i].slice(7) : argv[i + 1];
}

function versionCommand(argv: string[]): void {
  const json = argv.includes('--json');
  const unknown = argv.find((a) => a !== '--json');
  if (unknown !== undefined) throw new KeepError('INVALID_ARGUMENT', `keepd version takes only --json, not ${unknown}`);
  const report = versionReport('keepd', import.meta.url);
  out(json, report, () => console.log(formatVersionReport(report)));
}

async function main(argv: string[]): Promise<void> {
  registerObjectStorage();
  // Help before any command runs: no data directory needed.
  const help = helpFor('keepd', USAGE, argv);
  if (help !== undefined) return void console.log(help);
  const [name, ...rest] = argv;
  if (name === 'version' || name === '--version') return versionCommand(rest);
  const cmd = commands[name];
  if (!cmd) throw new KeepError('INVALID_ARGUMENT', `unknown command ${name} (see keepd help)`);
  const data = dataDirOf(rest);
  if (NEEDS_REPOSITORY.has(name) && data) requireRepository(data);
  if (name !== 'serve') exitOnInterrupt('keepd'); // (serve shuts down cleanly instead)
  await cmd(rest);
}

const argv = process.argv.slice(2);
main(argv).then(
  () => process.exit(process.exitCode ?? 0),
  (e: Error) => process.exit(reportExitError('keepd', e, argv.includes('--json'))),
);
