import type { BlobRecord } from '../blob-index.js';
import type { BlobView } from '../copy-index.js';
import { KeepError } from '../errors.js';
import { Id, toHex } from '../ids.js';
import type { BlobSpan, StoredBytes } from '../pack/reader.js';
import type { RepoStorage } from '../store/repo-storage.js';

/**
 * Reads of stored blobs where the index (through a BlobView: whose bytes)
 * says they lie, each proven against its storage hash; a read that races a
 * repack looks the blob up again.
 */
export class BlobReader {
  constructor(private readonly storage: RepoStorage) {}

  async readBlob(id: Id, view: BlobView): Promise<Buffer> {
    return (await this.readStored(id, view)).bytes;
  }

  /** readBlob, with the whole storage hash it proved (the index keeps only a prefix); `view` picks whose bytes. */
  async readStored(id: Id, view: BlobView): Promise<StoredBytes> {
    const r = view(id)?.record;
    if (!r) throw new KeepError('NOT_FOUND', `blob ${toHex(id)} is not in the repository`);
    const at = async (x: BlobRecord) => {
      const [got] = await this.storage.readBlobs(x.pack, [{ id, offset: x.offset, length: x.length, hash: x.hash }]);
      if (got instanceof Error) throw got;
      return got;
    };
    try {
      return await at(r);
    } catch (e) {
      // A concurrent prune may have repacked the blob between lookup and read: look again once.
      const now = view(id)?.record;
      if (now && now.pack !== r.pack) return at(now);
      throw e;
    }
  }

  /**
   * The blobs from `ids[from]` on that lie close together in one pack, in
   * request order (a restore asks in the order a backup wrote): read with one
   * call of at most `limits.run` bytes, skipping gaps of at most `limits.gap`,
   * and each proven against its storage hash. A damaged blob comes back as
   * its CORRUPT error in its place, so the ones before it can still be used
   * (readBlob reads it again alone). NOT_FOUND when `ids[from]` is unknown.
   */
  async readNearby(ids: Id[], from: number, limits: { run: number; gap: number }, view: BlobView): Promise<{ id: Id; data: StoredBytes | Error }[]> {
    const first = view(ids[from])?.record;
    if (!first) throw new KeepError('NOT_FOUND', `blob ${toHex(ids[from])} is not in the repository`);
    const run: BlobSpan[] = [{ id: ids[from], offset: first.offset, length: first.length, hash: first.hash }];
    let end = first.offset + first.length;
    for (let j = from + 1; j < ids.length; j++) {
      const r = view(ids[j])?.record;
      if (!r || r.pack !== first.pack || r.offset < end || r.offset - end > limits.gap || r.offset + r.length - first.offset > limits.run) break;
      run.push({ id: ids[j], offset: r.offset, length: r.length, hash: r.hash });
      end = r.offset + r.length;
    }
    let data: (StoredBytes | Error)[];
    try {
      data = await this.storage.readBlobs(first.pack, run);
    } catch {
      // A prune may have repacked them since the lookup: readStored looks again.
      data = await Promise.all(run.map((b) => this.readStored(b.id, view).catch((e: Error) => e)));
    }
    return run.map((b, k) => ({ id: b.id, data: data[k] }));
  }
}
