import { create } from '@bufbuild/protobuf';
import { ID_SIZE, KeepError, toHex } from '@keep/core';
import { CheckResponseSchema, ListSnapshotsResponseSchema, StatsResponseSchema } from '@keep/proto';
import { canUseSource } from '../../auth/tokens.js';
import { RpcCalls, writeOrWait } from '../call.js';
import { checkIds } from '../ids.js';
import { encodeReadBlobsMany, encodeReadBlobsSingle, MAX_READ_MESSAGE_BYTES, OutgoingBlob, snapshotToWire as toProtoSnapshot } from '@keep/proto';
import { readsOwnOnly, readView } from '../read-view.js';
import { audit } from '../../audit/log.js';

/**
 * ReadBlobs: requested blobs that lie back to back in one pack (a restore asks
 * in the order a backup wrote) are read with one call of up to this many
 * bytes; a gap up to READ_GAP between them is read and skipped.
 */
const READ_RUN = 2 * 1024 * 1024;
const READ_GAP = 64 * 1024;

/** Reading the repository: ListSnapshots, ReadBlobs, Stats, Check. */
export function readHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    listSnapshots: rpc.unary('ListSnapshots', 'any', (req: { source: string }, p) => {
      if (req.source && !canUseSource(p, req.source)) throw new KeepError('PERMISSION_DENIED', `this token may not read source ${req.source}`);
      const list = d.repo.snapshots(req.source ? { source: req.source } : {}).filter((s) => canUseSource(p, s.source));
      return create(ListSnapshotsResponseSchema, { snapshots: list.map(toProtoSnapshot) });
    }),

    readBlobs: rpc.serverStream<{ ids: Uint8Array[]; maxMessageBytes: number; source: string }>('ReadBlobs', async (call, p, beforeError) => {
      /** blobs gathered for the next message (when the request allows several per message) */
      let gathered: OutgoingBlob[] = [];
      let gatheredBytes = 0;
      const write = (msg: unknown) => writeOrWait(call, msg);
      const flush = async () => {
        if (gathered.length === 0) return;
        const blobs = gathered;
        gathered = [];
        gatheredBytes = 0;
        await write(encodeReadBlobsMany(blobs));
      };
      const ids = checkIds(call.request.ids);
      const perMessage = Math.min(call.request.maxMessageBytes, MAX_READ_MESSAGE_BYTES);
      const view = readView(d, p, call.request.source);
      // An id of another source's fails like an unknown one, before anything is sent (other tokens: NOT_FOUND when reached).
      if (readsOwnOnly(p)) for (const id of ids) if (!view(id)) throw new KeepError('PERMISSION_DENIED', `blob ${toHex(id)} does not belong to this token's sources`);
      const send = async (id: Buffer, data: Buffer, storageHash: Buffer) => {
        d.metrics.bytesServed({}, data.length);
        served += data.length;
        if (perMessage === 0) return write(encodeReadBlobsSingle({ id, data, storageHash }));
        if (gatheredBytes + data.length > perMessage) await flush();
        gathered.push({ id, data, storageHash });
        gatheredBytes += data.length + 2 * ID_SIZE;
      };
      let i = 0;
      let served = 0;
      let audited = false;
      // Blobs gathered before a missing or damaged one are sent before the error; the stream is audited either way, with what it served.
      beforeError(async () => {
        if (!audited) await audit(d.repo).record('read', p, { source: call.request.source || undefined, blobs: i, bytes: served, complete: false });
        audited = true;
        await flush();
      });
      while (i < ids.length && !call.cancelled) {
        d.tokens.assertActive(p); // a revoke ends the stream
        // The blobs from ids[i] on stored close together in one pack, read with one call.
        const run = await d.repo.readNearby(ids, i, { run: READ_RUN, gap: READ_GAP }, view);
        i += run.length;
        for (const b of run) {
          let read = b.data;
          // A damaged blob is read once more on its own: the engine's read retries a concurrent repack.
          if (read instanceof Error) {
            await flush(); // what was read before the damaged blob still goes out
            read = await d.repo.readStored(b.id, view);
          }
          await send(b.id, read.bytes, read.hash);
        }
      }
      // Durable in the log before the last gathered blobs go out: a client holding every blob may end before the status.
      await audit(d.repo).record('read', p, { source: call.request.source || undefined, blobs: i, bytes: served, complete: !call.cancelled });
      audited = true;
      await flush();
    }),

    check: rpc.unary('Check', ['admin'], async (req: { readData: boolean; readDataSubset: number }, p) => {
      const report = await d.repo.check({ readData: req.readData, readDataSubset: req.readDataSubset || undefined });
      await audit(d.repo).record('check', p, { ok: report.ok, errors: report.errors.length, blobs_read: report.blobs_read, ...(req.readData ? { read_data: true } : {}), ...(req.readDataSubset ? { read_data_subset: req.readDataSubset } : {}) });
      return create(CheckResponseSchema, { reportJson: JSON.stringify(report) });
    }),

    stats: rpc.unary('Stats', 'any', (_req: unknown, p) => {
      // Repository-wide counts would let a scoped agent see whether an upload was new (an existence oracle).
      if (p.role === 'agent' && p.dedup === 'source') throw new KeepError('PERMISSION_DENIED', 'repository-wide sizes need an admin or replica token');
      const snapshots = d.repo.snapshots().filter((s) => canUseSource(p, s.source)).length;
      return create(StatsResponseSchema, { snapshots: BigInt(snapshots), blobs: BigInt(d.repo.blobCount()), packs: BigInt(d.repo.packCount()), storedBytes: BigInt(d.repo.storedBytes()) });
    }),
  };
}
