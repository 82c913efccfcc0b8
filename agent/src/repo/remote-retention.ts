import { create } from '@bufbuild/protobuf';
import { ForgetOptions, ForgetResult, KeepError, SealedSnapshot, Snapshot } from '@keep/core';
import { forgetToWire, ForgetResponse, ReplaceSnapshotsRequestSchema, ReplaceSnapshotsResponse, SnapshotReplacementSchema, snapshotFromWire, snapshotToWire } from '@keep/proto';

/** The unary call of a RemoteConnection (remote.ts). */
interface Caller {
  call<Res>(method: 'forget' | 'replaceSnapshots', req: unknown, deadlineMs?: number): Promise<Res>;
}

/** keepd's refusal of a non-admin token, said in the command's words (removing snapshots is an admin's). */
function adminOnly(what: string): (e: unknown) => never {
  return (e) => {
    if (e instanceof KeepError && e.code === 'PERMISSION_DENIED') throw new KeepError('PERMISSION_DENIED', `${what} over keepd needs an admin token (an agent token may add snapshots, never remove them): ${e.message}`);
    throw e;
  };
}

/** keepd's Forget RPC (admin tokens): the same engine as `keepd forget`, its report as JSON. */
export async function remoteForget(conn: Caller, o: ForgetOptions): Promise<ForgetResult> {
  const req = forgetToWire(o);
  // No deadline: a large repository's retention takes as long as it takes.
  const r = await conn.call<ForgetResponse>('forget', req, 0).catch(adminOnly('keep forget'));
  try {
    return JSON.parse(r.reportJson) as ForgetResult;
  } catch {
    throw new KeepError('INTERNAL', 'keepd sent a forget report that is not valid JSON');
  }
}

/** keepd's ReplaceSnapshots RPC (admin tokens): rewritten records in, the published ones back. */
export async function remoteReplace(conn: Caller, list: { oldId: string; snapshot: SealedSnapshot }[]): Promise<Snapshot[]> {
  const req = create(ReplaceSnapshotsRequestSchema, { replacements: list.map((r) => create(SnapshotReplacementSchema, { oldId: r.oldId, snapshot: snapshotToWire(r.snapshot) })) });
  const res = await conn.call<ReplaceSnapshotsResponse>('replaceSnapshots', req).catch(adminOnly('keep tag'));
  return res.snapshots.map(snapshotFromWire);
}
