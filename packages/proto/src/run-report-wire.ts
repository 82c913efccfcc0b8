import { create } from '@bufbuild/protobuf';
import { checkRunReport, RunKind, RunReport } from '@keep/core';
import { RunReport as WireRunReport, RunReportSchema } from './gen/keep/v1/repository_pb.js';

/*
 * The ReportRuns RPC's reports both ways: the agent sends core's RunReport,
 * keepd checks what arrives (checkRunReport) before storing it.
 */

export function runReportToWire(r: RunReport): WireRunReport {
  return create(RunReportSchema, {
    id: r.id,
    source: r.source,
    job: r.job,
    kind: r.kind,
    reason: r.reason,
    attempt: r.attempt,
    startMs: BigInt(r.start_ms),
    endMs: BigInt(r.end_ms),
    result: r.result,
    files: BigInt(r.files),
    bytes: BigInt(r.bytes),
    snapshot: r.snapshot ?? '',
    errorClass: r.error_class ?? '',
    warnings: r.warnings,
    sealedDetail: r.sealed_detail ?? '',
  });
}

/** Empty strings are absent fields; the result is validated. */
export function runReportFromWire(w: WireRunReport): RunReport {
  return checkRunReport({
    id: w.id,
    source: w.source,
    job: w.job,
    kind: w.kind as RunKind,
    reason: w.reason,
    attempt: w.attempt,
    start_ms: Number(w.startMs),
    end_ms: Number(w.endMs),
    result: w.result as RunReport['result'],
    files: Number(w.files),
    bytes: Number(w.bytes),
    ...(w.snapshot ? { snapshot: w.snapshot } : {}),
    ...(w.errorClass ? { error_class: w.errorClass } : {}),
    warnings: w.warnings,
    ...(w.sealedDetail ? { sealed_detail: w.sealedDetail } : {}),
  });
}
