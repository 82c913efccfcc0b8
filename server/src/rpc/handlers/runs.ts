import { create } from '@bufbuild/protobuf';
import { MAX_REPORTS_PER_CALL } from '@keep/core';
import { ReportRunsResponseSchema, RunReport, runReportFromWire } from '@keep/proto';
import { RpcCalls } from '../call.js';
import { audit } from '../../audit/log.js';
import { acceptReports } from './agent-reports.js';

/** What agents report of their runs: ReportRuns (run-reports.ts stores them). */
export function runHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    // Agents for their own sources (as OpenSession), admins for any; a replica token stands for no agent.
    reportRuns: rpc.unary('ReportRuns', ['agent', 'admin'], async (req: { reports: RunReport[] }, p) => {
      const reports = acceptReports(d, p, req.reports, { max: MAX_REPORTS_PER_CALL, noun: 'run', decode: runReportFromWire });
      const received = await d.runs.record(reports);
      const failed = reports.filter((r) => r.result === 'failure');
      await audit(d.repo).record('runs.report', p, { sources: [...new Set(reports.map((r) => r.source))], runs: reports.length, failures: failed.length });
      if (failed.length) d.log.warn({ principal: p.tokenId, failures: failed.map((r) => ({ source: r.source, job: r.job, error_class: r.error_class })) }, 'agent reported failed runs');
      return create(ReportRunsResponseSchema, { serverTime: new Date(received).toISOString() });
    }),
  };
}
