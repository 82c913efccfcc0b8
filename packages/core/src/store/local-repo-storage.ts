import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { corrupt, KeepError } from '../errors.js';
import { INDEX_SEGMENT_SUFFIX, REPO_DIRS, REPO_FILES } from '../formats.js';
import { atomicWrite, fsyncDir } from '../fsutil.js';
import type { PackEntry } from '../pack/format.js';
import { type BlobSpan, PackHandles, readBlobRun, readTrailer, type StoredBytes } from '../pack/reader.js';
import { movePackIntoPlace, packPath, type SealedPack } from '../pack/writer.js';
import type { KeyFileTexts, RepoStorage, StoredPack, WriterHold } from './repo-storage.js';

/** Every pack file under packs/xx/. */
function listPackFiles(packsDir: string): { id: string; file: string }[] {
  const out: { id: string; file: string }[] = [];
  for (const sub of fs.readdirSync(packsDir)) {
    const d = path.join(packsDir, sub);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const n of fs.readdirSync(d)) if (n.endsWith('.pack')) out.push({ id: n.slice(0, -5), file: path.join(d, n) });
  }
  return out;
}

/** keys/<id>.json in the data directory, read on every call (another process may add one). */
class LocalKeyFiles implements KeyFileTexts {
  constructor(private readonly keysDir: string) {}

  list(): { id: string; text: string }[] {
    return fs
      .readdirSync(this.keysDir)
      .filter((n) => n.endsWith('.json'))
      .sort()
      .map((n) => ({ id: n.slice(0, -'.json'.length), text: fs.readFileSync(path.join(this.keysDir, n), 'utf8') }));
  }

  async write(id: string, text: string): Promise<void> {
    atomicWrite(path.join(this.keysDir, `${id}.json`), text);
  }

  async remove(id: string): Promise<void> {
    fs.rmSync(path.join(this.keysDir, `${id}.json`));
  }
}

/**
 * A repository's data directory (formats.ts layout), byte for byte what it
 * always was: packs renamed from tmp/ into packs/xx/, read through kept file
 * handles; snapshot and key files written tmp -> fsync -> rename.
 */
export class LocalRepoStorage implements RepoStorage {
  readonly description: string;
  readonly tmpDir: string;
  /** a reader that misses a deleted file looks the blob up again */
  readonly deleteDelayMs = 0;
  readonly packsDir: string;
  private readonly snapsDir: string;
  private readonly segmentsDir: string;
  private readonly handles = new PackHandles();
  readonly keyFiles: KeyFileTexts;

  constructor(readonly dir: string) {
    this.description = `directory ${dir}`;
    this.tmpDir = path.join(dir, REPO_DIRS.tmp);
    this.packsDir = path.join(dir, REPO_DIRS.packs);
    this.snapsDir = path.join(dir, REPO_DIRS.snapshots);
    this.segmentsDir = path.join(dir, REPO_DIRS.index);
    this.keyFiles = new LocalKeyFiles(path.join(dir, REPO_DIRS.keys));
  }

  async publishPack(p: SealedPack): Promise<void> {
    movePackIntoPlace(p, this.packsDir);
  }

  readBlobs(packId: string, blobs: BlobSpan[]): Promise<(StoredBytes | Error)[]> {
    return readBlobRun(packPath(this.packsDir, packId), blobs, this.handles);
  }

  readTrailer(packId: string): Promise<PackEntry[]> {
    return readTrailer(packPath(this.packsDir, packId));
  }

  async listPacks(): Promise<StoredPack[]> {
    return this.listPacksSync();
  }

  private listPacksSync(): StoredPack[] {
    const out: StoredPack[] = [];
    for (const p of listPackFiles(this.packsDir)) {
      try {
        const st = fs.statSync(p.file);
        out.push({ id: p.id, size: st.size, modified: st.mtimeMs });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // deleted while listing
      }
    }
    return out;
  }

  async deletePacks(ids: string[]): Promise<void> {
    for (const id of ids) fs.rmSync(packPath(this.packsDir, id), { force: true });
  }

  packBytes(): number {
    return this.listPacksSync().reduce((n, p) => n + p.size, 0);
  }

  private segmentFile(name: string): string {
    return path.join(this.segmentsDir, `${name}${INDEX_SEGMENT_SUFFIX}`);
  }

  /** tmp/ -> fsync -> link into index/ (a link, unlike a rename, refuses an existing name) -> directory fsync. */
  async putIndexSegment(name: string, bytes: Buffer): Promise<void> {
    fs.mkdirSync(this.segmentsDir, { recursive: true });
    const tmp = path.join(this.tmpDir, `${name}.${crypto.randomBytes(4).toString('hex')}${INDEX_SEGMENT_SUFFIX}.tmp`);
    const fd = fs.openSync(tmp, 'wx', 0o666);
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(tmp, this.segmentFile(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KeepError('ALREADY_EXISTS', `index segment ${name} exists`);
      throw e;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    fsyncDir(this.segmentsDir);
  }

  async listIndexSegments(): Promise<string[]> {
    if (!fs.existsSync(this.segmentsDir)) return [];
    return fs
      .readdirSync(this.segmentsDir)
      .filter((n) => n.endsWith(INDEX_SEGMENT_SUFFIX))
      .map((n) => n.slice(0, -INDEX_SEGMENT_SUFFIX.length))
      .sort();
  }

  async readIndexSegment(name: string): Promise<Buffer> {
    try {
      return fs.readFileSync(this.segmentFile(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw corrupt(`index segment ${name} is missing`);
      throw e;
    }
  }

  async deleteIndexSegments(names: string[]): Promise<void> {
    for (const n of names) fs.rmSync(this.segmentFile(n), { force: true });
    if (names.length) fsyncDir(this.segmentsDir);
  }

  async snapshotIds(): Promise<string[]> {
    return fs
      .readdirSync(this.snapsDir)
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -5));
  }

  async hasSnapshot(id: string): Promise<boolean> {
    return fs.existsSync(path.join(this.snapsDir, `${id}.json`));
  }

  async readSnapshot(id: string): Promise<string> {
    return fs.readFileSync(path.join(this.snapsDir, `${id}.json`), 'utf8');
  }

  async writeSnapshot(id: string, text: string): Promise<void> {
    atomicWrite(path.join(this.snapsDir, `${id}.json`), text);
  }

  async deleteSnapshots(ids: string[]): Promise<void> {
    for (const id of ids) fs.rmSync(path.join(this.snapsDir, `${id}.json`), { force: true });
  }

  async writeConfig(text: string): Promise<void> {
    atomicWrite(path.join(this.dir, REPO_FILES.config), text);
  }

  /** The config is the directory's own. */
  async attach(): Promise<void> {}

  /** The data directory's own lock (server data-lock.ts) already keeps a second keepd out. */
  async holdWriter(): Promise<WriterHold> {
    return { renew: async () => undefined, release: async () => undefined };
  }

  /** Files are not requests. */
  requestStats(): [] {
    return [];
  }

  async close(): Promise<void> {
    await this.handles.close();
  }
}
