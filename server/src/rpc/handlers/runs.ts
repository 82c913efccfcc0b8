import { create } from '@bufbuild/protobuf';
import { KeepError, MAX_REPORTS_PER_CALL } from '@keep/core';
import { ReportRunsResponseSchema, RunReport, runReportFromWire } from '@keep/proto';
import { canUseSource } from '../../auth/tokens.js';
import { RpcCalls } from '../call.js';
import { audit } from '../../audit/log.js';

/** What agents report of their runs: ReportRuns (run-reports.ts stores them). */
export function runHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    // Agents for their own sources (as OpenSession), admins for any; a replica token stands for no agent.
    reportRuns: rpc.unary('ReportRuns', ['agent', 'admin'], async (req: { reports: RunReport[] }, p) => {
      if (req.reports.length > MAX_REPORTS_PER_CALL) throw new KeepError('INVALID_ARGUMENT', `at most ${MAX_REPORTS_PER_CALL} run reports per call`);
      const reports = req.reports.map(runReportFromWire);
      for (const r of reports) if (!canUseSource(p, r.source)) throw new KeepError('PERMISSION_DENIED', `this token may not report runs of source ${r.source}`);
      // A replica not promoted keeps no reports of its own; UNAVAILABLE (not a refusal): the agent keeps them for the writable keepd.
      const readOnly = d.readOnly?.();
      if (readOnly) throw new KeepError('UNAVAILABLE', readOnly);
      const received = await d.runs.record(reports);
      const failed = reports.filter((r) => r.result === 'failure');
      await audit(d.repo).record('runs.report', p, { sources: [...new Set(reports.map((r) => r.source))], runs: reports.length, failures: failed.length });
      if (failed.length) d.log.warn({ principal: p.tokenId, failures: failed.map((r) => ({ source: r.source, job: r.job, error_class: r.error_class })) }, 'agent reported failed runs');
      return create(ReportRunsResponseSchema, { serverTime: new Date(received).toISOString() });
    }),
  };
}
