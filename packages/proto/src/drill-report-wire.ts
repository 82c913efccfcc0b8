import { create } from '@bufbuild/protobuf';
import { checkDrillReport, DrillKind, DrillMode, DrillReport } from '@keep/core';
import { DrillReport as WireDrillReport, DrillReportSchema } from './gen/keep/v1/repository_pb.js';

/*
 * The ReportDrills RPC's reports both ways: the agent sends core's
 * DrillReport, keepd checks what arrives (checkDrillReport) before storing it.
 */

export function drillReportToWire(r: DrillReport): WireDrillReport {
  return create(DrillReportSchema, {
    id: r.id,
    source: r.source,
    snapshot: r.snapshot,
    kind: r.kind,
    mode: r.mode,
    result: r.result,
    startMs: BigInt(r.start_ms),
    endMs: BigInt(r.end_ms),
    durationMs: BigInt(r.duration_ms),
    setupMs: BigInt(r.setup_ms),
    files: BigInt(r.files),
    bytes: BigInt(r.bytes),
    filesVerified: BigInt(r.files_verified),
    verifyFailures: BigInt(r.verify_failures),
    errorClass: r.error_class ?? '',
    consistentMs: BigInt(r.consistent_ms ?? 0),
    promotedMs: BigInt(r.promoted_ms ?? 0),
    recoveredToMs: BigInt(r.recovered_to_ms ?? 0),
  });
}

/** An empty error class is absent; the result is validated. */
export function drillReportFromWire(w: WireDrillReport): DrillReport {
  return checkDrillReport({
    id: w.id,
    source: w.source,
    snapshot: w.snapshot,
    kind: w.kind as DrillKind,
    mode: w.mode as DrillMode,
    result: w.result as DrillReport['result'],
    start_ms: Number(w.startMs),
    end_ms: Number(w.endMs),
    duration_ms: Number(w.durationMs),
    setup_ms: Number(w.setupMs),
    files: Number(w.files),
    bytes: Number(w.bytes),
    files_verified: Number(w.filesVerified),
    verify_failures: Number(w.verifyFailures),
    ...(w.errorClass ? { error_class: w.errorClass } : {}),
    // PostgreSQL drills only: 0 is absent
    ...(w.consistentMs ? { consistent_ms: Number(w.consistentMs) } : {}),
    ...(w.promotedMs ? { promoted_ms: Number(w.promotedMs) } : {}),
    ...(w.recoveredToMs ? { recovered_to_ms: Number(w.recoveredToMs) } : {}),
  });
}
