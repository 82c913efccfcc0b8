import { create } from '@bufbuild/protobuf';
import { MAX_DRILLS_PER_CALL } from '@keep/core';
import { DrillReport, drillReportFromWire, ReportDrillsResponseSchema } from '@keep/proto';
import { audit } from '../../audit/log.js';
import { RpcCalls } from '../call.js';
import { acceptReports } from './agent-reports.js';

/** Restore drills agents ran (`keep drill`): ReportDrills (drills.ts stores them; each is audited "drill.done"). */
export function drillHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    // Agents for their own sources, admins for any; a replica token stands for no agent.
    reportDrills: rpc.unary('ReportDrills', ['agent', 'admin'], async (req: { drills: DrillReport[] }, p) => {
      const drills = acceptReports(d, p, req.drills, { max: MAX_DRILLS_PER_CALL, noun: 'drill', decode: drillReportFromWire });
      const received = await d.drills.record(drills);
      // durable before the answer, as every audited change (one group-committed batch; no rejection left unhandled)
      await Promise.all(
        drills.map((r) => audit(d.repo).record('drill.done', p, { source: r.source, snapshot: r.snapshot, kind: r.kind, mode: r.mode, result: r.result, duration_ms: r.duration_ms, files: r.files, bytes: r.bytes, verify_failures: r.verify_failures, error_class: r.error_class })),
      );
      const failed = drills.filter((r) => r.result === 'failure');
      if (failed.length) d.log.warn({ principal: p.tokenId, failures: failed.map((r) => ({ source: r.source, snapshot: r.snapshot, error_class: r.error_class })) }, 'agent reported failed drills');
      return create(ReportDrillsResponseSchema, { serverTime: new Date(received).toISOString() });
    }),
  };
}
