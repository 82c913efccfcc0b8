/**
 * Issue 20 item 3: prune's mark + sweep at scale, on synthetic index records
 * (no pack bytes, no trees: the engine's collections are what is measured).
 * Run by hand, not in CI or in main.ts (30 million blobs take minutes and
 * ~3 GB of disk):
 *
 *   node bench/dist/prune-scale.js [--blobs 30000000] [--dir PATH] [--spill-at N]
 *
 * Builds an index of N blob records (1,000 per pack) straight into
 * index.mdb, then times the phases of gc/prune.ts with its own code: the
 * mark (every other blob added to the live set in a scattered order, as a
 * tree walk meets ids), candidate selection, the batched sweep and per-pack
 * usage. Reports wall time, peak RSS, peak anonymous RSS and peak V8 heap per
 * phase. RSS includes the file pages LMDB maps (the index and the scratch
 * files: page cache the kernel can reclaim); anonymous RSS and the heap are
 * what the process itself holds, and what must stay bounded.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeBlobRecord, INDEX_TABLES, newSeenSet, recordsOf, REPO_DIRS, REPO_FILES, Repository, SEEN_SET_SPILL_AT, selectCandidates } from '@keep/core';

interface LmdbEnv {
  openDB(o: { name: string; keyEncoding?: string; encoding?: string }): { putSync(k: unknown, v: unknown): void };
  transactionSync(f: () => void): void;
  close(): Promise<void>;
}
// lmdb is @keep/core's dependency, not the bench's: load it from there.
const { open } = createRequire(import.meta.resolve('@keep/core'))('lmdb') as { open(o: object): LmdbEnv };

const BLOBS_PER_PACK = 1000;
const HOUR = 3_600_000;

const peak = { rss: 0, anon: 0, heap: 0 };
/** Linux: resident anonymous memory (the process's own), apart from mapped file pages. */
function rssAnon(): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
function sample(): void {
  const m = process.memoryUsage();
  peak.rss = Math.max(peak.rss, m.rss);
  peak.anon = Math.max(peak.anon, rssAnon());
  peak.heap = Math.max(peak.heap, m.heapUsed + m.external);
}
/** `items`, sampling memory every million. */
function* sampled<T>(items: Iterable<T>): Generator<T> {
  let n = 0;
  for (const x of items) {
    if (++n % 1_000_000 === 0) sample();
    yield x;
  }
}
const mib = (n: number) => (n / 1024 / 1024).toFixed(0);

/** Blob i's id: its number first, so the index is written in key order; the rest filler. */
function idOf(i: number): Buffer {
  const b = Buffer.alloc(32, 0x5a);
  b.writeUInt32BE(Math.floor(i / 2 ** 32), 0);
  b.writeUInt32BE(i >>> 0, 4);
  return b;
}
const packOf = (i: number) => Math.floor(i / BLOBS_PER_PACK).toString(16).padStart(32, '0');
/** Half the blobs are live, scattered over all packs. */
const isLive = (i: number) => ((Math.imul(i, 2654435761) >>> 7) & 1) === 0;

function buildIndex(dir: string, n: number, seen: number): void {
  const env = open({ path: path.join(dir, REPO_FILES.index), noSubdir: true, compression: false, maxDbs: 32, noSync: true });
  const blobs = env.openDB({ name: INDEX_TABLES.blobs, keyEncoding: 'binary', encoding: 'binary' });
  const packs = env.openDB({ name: INDEX_TABLES.packs });
  const hash = Buffer.alloc(16, 1);
  for (let start = 0; start < n; start += 100_000) {
    env.transactionSync(() => {
      for (let i = start; i < Math.min(n, start + 100_000); i++) {
        if (i % BLOBS_PER_PACK === 0) packs.putSync(packOf(i), { size: BLOBS_PER_PACK * 4096, blobs: BLOBS_PER_PACK, created: seen });
        blobs.putSync(idOf(i), encodeBlobRecord({ pack: packOf(i), offset: (i % BLOBS_PER_PACK) * 4096, length: 4096, hash, type: 0, seen }));
      }
    });
    if (start % 5_000_000 === 0) sample();
  }
  void env.close();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { blobs: { type: 'string' }, dir: { type: 'string' }, 'spill-at': { type: 'string' } } });
  const n = Number(values.blobs ?? 30_000_000);
  const spillAt = Number(values['spill-at'] ?? SEEN_SET_SPILL_AT);
  const dir = fs.mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'keep-prune-scale-'));
  const phases: { phase: string; s: number; rss: string; anon: string; heap: string }[] = [];
  const phase = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    peak.rss = peak.anon = peak.heap = 0;
    const t0 = performance.now();
    const out = await f();
    sample();
    phases.push({ phase: name, s: (performance.now() - t0) / 1000, rss: mib(peak.rss), anon: mib(peak.anon), heap: mib(peak.heap) });
    console.log(JSON.stringify(phases.at(-1)));
    return out;
  };
  try {
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    await (await Repository.init(dir)).close();
    await phase(`build ${n} records`, () => buildIndex(dir, n, t0));
    const repo = await Repository.open(dir);
    const scratch = { spillAt, dir: path.join(dir, REPO_DIRS.tmp) };
    const live = newSeenSet(scratch);
    const candidates = newSeenSet(scratch);
    // A multiplier coprime with n visits every blob once, in a scattered order.
    let step = 2_654_435_761 % n || 1;
    const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
    while (gcd(step, n) !== 1) step++;
    await phase('mark', () => {
      for (let j = 0, i = 0; j < n; j++, i = (i + step) % n) {
        if (isLive(i)) live.add(idOf(i).toString('hex'));
        if (j % 1_000_000 === 0) sample();
      }
    });
    const cutoff = t0 + HOUR;
    const sel = await phase('select candidates', () => selectCandidates({ allRecords: () => sampled(repo.allRecords()) }, live, cutoff, candidates));
    const liveCount = live.size;
    live.close();
    const removed = await phase('sweep', () => repo.sweepBlobs(sampled(recordsOf(candidates)), cutoff));
    candidates.close();
    await phase('pack usage', () => {
      const u = repo.packUsage({ createdBefore: cutoff, spillAt });
      let dead = 0;
      for (const [, p] of sampled(u)) if (p.liveBlobs === 0) dead++;
      u.close();
      return dead;
    });
    await repo.close();
    const total = phases.slice(1).reduce((a, p) => a + p.s, 0);
    console.log(
      JSON.stringify({ blobs: n, spill_at: spillAt, live: liveCount, candidates: removed, kept_recent: sel.keptRecent, mark_and_sweep_s: total.toFixed(1), peak_rss_mib: Math.max(...phases.slice(1).map((p) => Number(p.rss))), peak_anon_rss_mib: Math.max(...phases.slice(1).map((p) => Number(p.anon))), peak_heap_mib: Math.max(...phases.slice(1).map((p) => Number(p.heap))) }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
