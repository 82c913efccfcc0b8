import { DEFAULT_REPACK_BELOW, formatAlerts, formatKeepdCheck, formatKeepdForget, formatPrune, formatStatus, FORGET_FLAGS, KeepError, parseGroupBy, parseTier, policyFromFlags, StatusCheck, StatusView, AlertsView } from '@keep/core';
import { parse, percent } from '../terminal/args.js';
import { show, withAdmin } from './admin-run.js';
import { auditCommand, tokenCommand } from './admin-tokens.js';

/**
 * `keep admin status [--check]`: `keepd status` over gRPC. --check keeps the
 * monitoring-plugin contract even when keepd cannot be asked: UNKNOWN, exit 3.
 */
async function statusCommand(argv: string[]): Promise<number | void> {
  const { values } = parse(argv, { check: { type: 'boolean' } });
  if (!values.check) {
    const s = await withAdmin((a) => a.status());
    return show(values.json, s, () => formatStatus(s as unknown as StatusView));
  }
  let check: StatusCheck;
  try {
    check = ((await withAdmin((a) => a.status())) as unknown as StatusView).watchdog.check;
  } catch (e) {
    check = { status: 'UNKNOWN', code: 3, line: `KEEP UNKNOWN - cannot ask keepd: ${(e as Error).message}` };
  }
  show(values.json, check, () => check.line);
  return check.code;
}

/** The admin subcommands, each as its keepd counterpart with the same --json. */
const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number | void>> = {
  status: statusCommand,

  async alerts(argv) {
    const { values } = parse(argv, {});
    const r = await withAdmin((a) => a.alerts());
    show(values.json, r, () => formatAlerts(r as unknown as AlertsView));
  },

  async report(argv) {
    const { values } = parse(argv, { since: { type: 'string' }, format: { type: 'string' } });
    const format = values.json ? 'json' : (values.format ?? 'md');
    if (format !== 'md' && format !== 'json') throw new KeepError('INVALID_ARGUMENT', `--format takes md or json, not ${format}`);
    const r = await withAdmin((a) => a.report(values.since));
    show(format === 'json', r.report, () => r.markdown);
  },

  async check(argv) {
    const { values } = parse(argv, { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } });
    const subset = percent(values['read-data-subset'], '--read-data-subset');
    const r = await withAdmin((a) => a.check({ readData: Boolean(values['read-data']), readDataSubset: subset }));
    show(values.json, r, () => formatKeepdCheck(r));
    if (!r.ok) throw new KeepError('CORRUPT', `check found ${r.errors.length} problem(s): ${r.errors[0]}`);
  },

  async forget(argv) {
    const { values } = parse(argv, FORGET_FLAGS);
    const dryRun = Boolean(values['dry-run']);
    const r = await withAdmin((a) =>
      a.forget({
        source: values.source as string | undefined,
        groupBy: parseGroupBy(values['group-by'] as string | undefined),
        policy: policyFromFlags(values),
        tier: typeof values.tier === 'string' ? parseTier(values.tier) : undefined,
        dryRun,
        prune: Boolean(values.prune),
      }),
    );
    show(values.json, r, () => formatKeepdForget(r, dryRun));
    if (r.groups.length === 0 && r.skipped.length) throw new KeepError('INVALID_ARGUMENT', 'no retention policy: give --keep-last/--keep-daily/... or --tier');
  },

  async prune(argv) {
    const { values } = parse(argv, { 'dry-run': { type: 'boolean' }, 'repack-below': { type: 'string' } });
    const below = values['repack-below'] === undefined ? DEFAULT_REPACK_BELOW : Number(values['repack-below']);
    if (!(below >= 0 && below <= 1)) throw new KeepError('INVALID_ARGUMENT', '--repack-below takes a fraction from 0 to 1');
    const r = await withAdmin((a) => a.prune({ dryRun: Boolean(values['dry-run']), repackBelow: below }));
    show(values.json, r, () => formatPrune(r));
  },

  token: tokenCommand,
  audit: auditCommand,
};

/**
 * `keep admin ...`: keepd's administration over gRPC with an admin token
 * (KEEP_TOKEN / KEEP_TOKEN_FILE), so an operator needs no shell on the
 * repository server. No passphrase: keepd's reports need no key. keepd
 * audits every call with the token id and peer.
 */
export async function adminCommand(argv: string[]): Promise<number | void> {
  const [sub, ...rest] = argv;
  const run = sub === undefined ? undefined : SUBCOMMANDS[sub];
  if (!run) throw new KeepError('INVALID_ARGUMENT', `keep admin takes ${Object.keys(SUBCOMMANDS).join(', ')} (see keep admin --help)`);
  return run(rest);
}
