import { create } from '@bufbuild/protobuf';
import { KeepError, ManualClock, prune } from '@keep/core';
import {
  CreateTokenRequest,
  CreateTokenResponseSchema,
  GetReportRequest,
  GetReportResponseSchema,
  GetStatusResponseSchema,
  ListAlertsResponseSchema,
  ListAuditRequest,
  ListAuditResponseSchema,
  PruneRequest,
  PruneResponseSchema,
  RevokeTokenRequest,
  RevokeTokenResponseSchema,
} from '@keep/proto';
import { RpcCalls } from '../call.js';
import { audit } from '../../audit/log.js';
import { pruneFields } from '../../audit/events.js';
import { listAudit, parseSince } from '../../audit/list.js';
import { checkTokenRequest } from '../../auth/token-request.js';
import { statusReport } from '../../commands/status.js';
import { alertsReport } from '../../control/alerts.js';
import { drReport } from '../../report/dr-report.js';
import { formatReportMarkdown } from '../../report/report-markdown.js';
import { tokenToWire } from '../../sync/tokens.js';

/**
 * Remote administration (`keep admin ...`), admin tokens only: what keepd's
 * own commands do on its shell, on the repository it serves, each answer in
 * the JSON of that command's --json. Every call is audited with the token id
 * and peer: the queries as admin.* events, the changes as the events their
 * local commands record (prune, token.create, token.revoke). Forget, Check
 * and ListTokens live with their families (retention.ts, reads.ts,
 * replication.ts) and are audited there.
 */
export function adminHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    getStatus: rpc.unary('GetStatus', ['admin'], async (_req: unknown, p) => {
      const report = statusReport(d.repo, d.clock, { replicas: d.replicas, runs: d.runs });
      await audit(d.repo).record('admin.status', p, { check: report.watchdog.check.status });
      return create(GetStatusResponseSchema, { reportJson: JSON.stringify(report) });
    }),

    listAlerts: rpc.unary('ListAlerts', ['admin'], async (_req: unknown, p) => {
      const report = alertsReport(d.repo);
      await audit(d.repo).record('admin.alerts', p, { active: report.active.length });
      return create(ListAlertsResponseSchema, { reportJson: JSON.stringify(report) });
    }),

    getReport: rpc.unary('GetReport', ['admin'], async (req: GetReportRequest, p) => {
      // one instant: the window's end, and what --since counts back from
      const clock = new ManualClock(d.clock.now());
      const report = drReport(d.repo, clock, parseSince(req.since || '30d', clock));
      await audit(d.repo).record('admin.report', p, { since: report.window.start });
      return create(GetReportResponseSchema, { reportJson: JSON.stringify(report), markdown: formatReportMarkdown(report) });
    }),

    prune: rpc.unary('Prune', ['admin'], async (req: PruneRequest, p) => {
      if (!req.dryRun) rpc.writable();
      if (req.repackBelow !== undefined && !(req.repackBelow >= 0 && req.repackBelow <= 1)) throw new KeepError('INVALID_ARGUMENT', '--repack-below takes a fraction from 0 to 1');
      // The engine `keepd prune` runs; open sessions' blobs are protected as they are from a prune beside keepd.
      const report = await prune(d.repo, { dryRun: req.dryRun, repackBelow: req.repackBelow });
      await audit(d.repo).record('prune', p, { ...pruneFields(report), ...(report.dry_run ? { dry_run: true } : {}) });
      return create(PruneResponseSchema, { reportJson: JSON.stringify(report) });
    }),

    createToken: rpc.unary('CreateToken', ['admin'], async (req: CreateTokenRequest, p) => {
      const grant = checkTokenRequest({ role: req.role, sources: req.sources, allSources: req.allSources, dedup: req.dedup });
      // Audited by the store (token.create, with this principal); the secret goes back in the answer only.
      const { token, record } = await d.tokens.create(grant.role, grant, p);
      return create(CreateTokenResponseSchema, { token, record: tokenToWire(record) });
    }),

    revokeToken: rpc.unary('RevokeToken', ['admin'], async (req: RevokeTokenRequest, p) => {
      await d.tokens.revoke(req.id, p);
      return create(RevokeTokenResponseSchema, {});
    }),

    listAudit: rpc.unary('ListAudit', ['admin'], async (req: ListAuditRequest, p) => {
      // --since is read against keepd's clock: server time is the truth.
      const filter = { since: req.since ? parseSince(req.since, d.clock) : undefined, source: req.source || undefined, event: req.event || undefined };
      const records = listAudit(d.repo.dir, filter);
      // Recorded after the listing: the answer holds the log as it was asked for.
      await audit(d.repo).record('admin.audit.list', p, { records: records.length, ...(filter.event ? { event: filter.event } : {}) });
      return create(ListAuditResponseSchema, { recordsJson: JSON.stringify(records) });
    }),
  };
}
