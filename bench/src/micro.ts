import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {
  chunkId,
  Chunking,
  chunkingFor,
  Compression,
  compressBlob,
  DEFAULT_CHUNKER,
  deriveKeys,
  gearBounds,
  Id,
  newMasterKey,
  openBlob,
  PackWriter,
  Repository,
  SealPool,
  sealData,
  storageHash,
  StreamChunker,
} from '@keep/core';
import { Bench, Task } from 'tinybench';
import { content, Rng } from './datagen.js';
import { MB, MiB, removeTemp, tempDir } from './util.js';

/**
 * Micro-benchmarks of each stage of the backup pipeline, in process, on one
 * buffer (16 MiB, cut into 1 MiB chunks where the stage works per chunk, as
 * the pipeline does with FastCDC's 1 MiB average). Each stage is shown next
 * to a reference: the raw primitive it is built on, measured on the same
 * bytes on this machine (its practical limit).
 */

export interface MicroOptions {
  quick: boolean;
  log: (line: string) => void;
}

export interface MicroResult {
  stage: string;
  unit: 'MB/s' | 'ops/s';
  value: number;
  /** relative margin of error, % */
  rme: number;
  samples: number;
  limit_name: string | null;
  limit: number | null;
  /** value / limit */
  of_limit: number | null;
  note: string;
}

/** Libraries @keep/core is built on, resolved from core's own dependencies (for the raw references). */
const coreRequire = createRequire(import.meta.resolve('@keep/core'));
function optional<T>(name: string): T | undefined {
  try {
    return coreRequire(name) as T;
  } catch {
    return undefined;
  }
}
type ZstdModule = { Compressor: new () => { setParameters(p: { compressionLevel: number }): void; compress(b: Uint8Array): Buffer } };
type FastCdcModule = { get_chunks(b: Uint8Array, min: number, avg: number, max: number): Uint32Array };

interface Case {
  stage: string;
  /** work per iteration: bytes (MB/s) or operations (ops/s) */
  bytes?: number;
  ops?: number;
  fn: () => unknown;
  limit?: { name: string; fn: () => unknown } | { name: string; value: () => number | null };
  note?: () => string;
  afterEach?: () => void;
}

export async function runMicro(opts: MicroOptions): Promise<MicroResult[]> {
  const SIZE = 16 * MiB;
  const CHUNK = MiB;
  const rng = new Rng(7);
  const text = content('text', SIZE, rng);
  const random = content('random', SIZE, rng);
  const slices = (b: Buffer) => Array.from({ length: b.length / CHUNK }, (_, i) => b.subarray(i * CHUNK, (i + 1) * CHUNK));
  const textChunks = slices(text);
  const randomChunks = slices(random);
  const master = crypto.randomBytes(32);
  const keys = deriveKeys(master);
  const salt = crypto.randomBytes(16);
  const randomIds = randomChunks.map((c) => chunkId(keys, c));
  const textIds = textChunks.map((c) => chunkId(keys, c));
  const scratch = tempDir('micro');
  const zstd = optional<ZstdModule>('zstd-napi');
  const fastcdc = optional<FastCdcModule>('fastcdc-wasm');
  const cases: Case[] = [];

  // ---- chunking
  /** The random buffer through a StreamChunker in 4 MiB reads: how many chunks. */
  const streamChunks = (params: Chunking) => () => {
    const c = new StreamChunker(params);
    let n = 0;
    for (let o = 0; o < SIZE; o += 4 * MiB) n += c.push(random.subarray(o, o + 4 * MiB)).length;
    return n + c.finish().length;
  };
  cases.push({
    stage: 'FastCDC chunking (StreamChunker, 4 MiB reads), random',
    bytes: SIZE,
    fn: streamChunks(DEFAULT_CHUNKER),
    limit: fastcdc && {
      name: 'fastcdc-wasm get_chunks, one call',
      fn: () => fastcdc.get_chunks(random, DEFAULT_CHUNKER.min, DEFAULT_CHUNKER.avg, DEFAULT_CHUNKER.max),
    },
  });
  const keyedChunking = chunkingFor({ ...DEFAULT_CHUNKER, keyed: true }, deriveKeys(newMasterKey()));
  cases.push({
    stage: 'keyed FastCDC (StreamChunker, gear table from the key: new repositories), random',
    bytes: SIZE,
    fn: streamChunks(keyedChunking),
    limit: { name: 'the same gear scan, one call (gearBounds)', fn: () => gearBounds(random, SIZE, keyedChunking, keyedChunking.gear!) },
  });

  // ---- ids
  cases.push({
    stage: 'chunk ids: keyed BLAKE3 (chunkId), 1 MiB chunks',
    bytes: SIZE,
    fn: () => randomChunks.map((c) => chunkId(keys, c)),
    limit: { name: 'unkeyed BLAKE3 one-shot (storageHash), 16 MiB', fn: () => storageHash(random) },
  });

  // ---- compression
  const rawZstd = (level: number) => {
    if (!zstd) return undefined;
    const c = new zstd.Compressor();
    c.setParameters({ compressionLevel: level });
    return c;
  };
  for (const [level, zl] of [
    ['low', 1],
    ['medium', 3],
    ['high', 9],
  ] as const) {
    const raw = rawZstd(zl);
    let out = 0;
    cases.push({
      stage: `zstd ${level} (compressBlob), text-like`,
      bytes: SIZE,
      fn: () => {
        out = 0;
        for (const c of textChunks) out += compressBlob(c, level).bytes.length;
      },
      limit: raw && { name: `zstd-napi level ${zl}, same chunks`, fn: () => textChunks.map((c) => raw.compress(c)) },
      note: () => `ratio ${(SIZE / out).toFixed(2)}x`,
    });
  }
  {
    const raw = rawZstd(3);
    let out = 0;
    cases.push({
      stage: 'zstd medium (compressBlob), random',
      bytes: SIZE,
      fn: () => {
        out = 0;
        for (const c of randomChunks) out += compressBlob(c, 'medium').bytes.length;
      },
      limit: raw && { name: 'zstd-napi level 3 full pass (what the probe avoids)', fn: () => randomChunks.map((c) => raw.compress(c)) },
      note: () => (out === SIZE ? 'stored raw (three 16 KiB probes)' : `ratio ${(SIZE / out).toFixed(3)}x`),
    });
  }

  // ---- sealing
  const rawGcm = (chunks: Buffer[]) => () => {
    const key = keys.sealKey(salt);
    for (const c of chunks) {
      const g = crypto.createCipheriv('aes-256-gcm', key, crypto.randomBytes(12));
      g.update(c);
      g.final();
      g.getAuthTag();
    }
  };
  cases.push({
    stage: 'seal AES-256-GCM (sealData, compression none)',
    bytes: SIZE,
    fn: () => randomChunks.map((c, i) => sealData(keys, salt, randomIds[i], c, 'none')),
    limit: { name: 'node:crypto aes-256-gcm, same chunks', fn: rawGcm(randomChunks) },
  });
  const sealedRandom = randomChunks.map((c, i) => sealData(keys, salt, randomIds[i], c, 'none'));
  cases.push({
    stage: 'open (openBlob: AES-GCM + id re-hash), random',
    bytes: SIZE,
    fn: () => sealedRandom.map((s, i) => openBlob(keys, randomIds[i], s)),
    limit: {
      name: 'node:crypto aes-256-gcm decrypt + keyed BLAKE3',
      fn: () => {
        const key = keys.sealKey(salt);
        for (let i = 0; i < sealedRandom.length; i++) {
          const s = sealedRandom[i];
          const d = crypto.createDecipheriv('aes-256-gcm', key, s.subarray(20, 32));
          d.setAAD(Buffer.concat([randomIds[i], s.subarray(0, 32)]));
          d.setAuthTag(s.subarray(s.length - 16));
          const p = Buffer.concat([d.update(s.subarray(32, s.length - 16)), d.final()]);
          chunkId(keys, p.subarray(1));
        }
      },
    },
  });
  let sealOneThread = NaN;
  cases.push({
    stage: 'seal medium, text-like (sealData, 1 thread)',
    bytes: SIZE,
    fn: () => textChunks.map((c, i) => sealData(keys, salt, textIds[i], c, 'medium')),
  });
  const pool = new SealPool(master);
  cases.push({
    stage: `seal medium, text-like (SealPool, ${pool.size} workers)`,
    bytes: SIZE,
    fn: async () => Promise.all(textChunks.map((c, i) => pool.seal(salt, textIds[i], c, 'medium' as Compression))),
    limit: { name: `${pool.size} x the 1-thread figure`, value: () => (Number.isFinite(sealOneThread) ? sealOneThread * pool.size : null) },
  });

  // ---- pack writing
  const tmpDir = path.join(scratch, 'tmp');
  const packsDir = path.join(scratch, 'packs');
  fs.mkdirSync(tmpDir, { recursive: true });
  fs.mkdirSync(packsDir, { recursive: true });
  cases.push({
    stage: 'pack write (PackWriter add x16 + finish: fsync, rename)',
    bytes: sealedRandom.reduce((a, b) => a + b.length, 0),
    fn: () => {
      const w = new PackWriter(tmpDir, packsDir);
      sealedRandom.forEach((s, i) => w.add(randomIds[i], 0, s));
      w.finish();
    },
    afterEach: () => {
      fs.rmSync(packsDir, { recursive: true, force: true });
      fs.mkdirSync(packsDir);
    },
    limit: {
      name: 'fs.writeSync 1 MiB x16 + fsync',
      fn: () => {
        const p = path.join(scratch, 'raw.bin');
        const fd = fs.openSync(p, 'w');
        let pos = 0;
        for (const s of sealedRandom) pos += fs.writeSync(fd, s, 0, s.length, pos);
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        fs.rmSync(p);
      },
    },
  });

  // ---- LMDB index
  const repoDir = path.join(scratch, 'repo');
  const repo = await Repository.init(repoDir);
  const BLOBS = 20000;
  const present: Id[] = [];
  const entry = (id: Buffer, i: number) => ({ id, type: 0, offset: 16 + i * 1000, length: 1000, hash: crypto.randomBytes(32) });
  for (let b = 0; b < BLOBS / 1000; b++) {
    const ids = Array.from({ length: 1000 }, () => crypto.randomBytes(32));
    present.push(...ids);
    await repo.indexPack(crypto.randomBytes(16).toString('hex'), 16 * MiB, ids.map(entry));
  }
  const LOOKUPS = 10000;
  const hits = Array.from({ length: LOOKUPS }, (_, i) => present[(i * 7919) % present.length]);
  const misses = Array.from({ length: LOOKUPS }, () => crypto.randomBytes(32));
  const map = new Map(present.map((id) => [id.toString('hex'), { pack: 'x', offset: 0 }]));
  const mapLimit = (ids: Id[]) => ({
    name: 'in-memory Map.get (hex key)',
    fn: () => {
      let n = 0;
      for (const id of ids) if (map.get(id.toString('hex'))) n++;
      return n;
    },
  });
  cases.push({
    stage: `index lookup, present (Repository.lookup, ${BLOBS / 1000}k blobs)`,
    ops: LOOKUPS,
    fn: () => {
      let n = 0;
      for (const id of hits) if (repo.lookup(id)) n++;
      if (n !== LOOKUPS) throw new Error('lookup lost blobs');
    },
    limit: mapLimit(hits),
  });
  cases.push({
    stage: 'index lookup, absent (Repository.lookup)',
    ops: LOOKUPS,
    fn: () => {
      for (const id of misses) if (repo.lookup(id)) throw new Error('phantom blob');
    },
    limit: mapLimit(misses),
  });
  cases.push({
    stage: 'index insert (indexPack, 1000 blobs per transaction)',
    ops: 1000,
    fn: async () =>
      repo.indexPack(
        crypto.randomBytes(16).toString('hex'),
        16 * MiB,
        Array.from({ length: 1000 }, (_, i) => entry(crypto.randomBytes(32), i)),
      ),
  });
  const batch = hits.slice(0, 128);
  cases.push({
    stage: 'missing(128 present ids): lookup + touch transaction',
    ops: 128,
    fn: async () => {
      const lacking = await repo.missing(batch);
      if (lacking.length) throw new Error('missing() lost blobs');
    },
  });

  // ---- run
  const bench = new Bench({
    time: opts.quick ? 100 : 600,
    iterations: opts.quick ? 2 : 4,
    warmup: true,
    warmupIterations: 1,
    warmupTime: 0,
    throws: true,
  });
  const limitTasks = new Map<Case, string>();
  for (const c of cases) {
    bench.add(c.stage, c.fn, c.afterEach ? { afterEach: c.afterEach } : undefined);
    if (c.limit && 'fn' in c.limit) {
      const name = `limit: ${c.limit.name} (${c.stage})`;
      bench.add(name, c.limit.fn);
      limitTasks.set(c, name);
    }
  }
  bench.addEventListener('cycle', (e) => {
    const t = e.task as Task | undefined;
    if (t) opts.log(`micro: ${t.name}`);
  });
  const t0 = performance.now();
  try {
    await bench.run();
  } finally {
    await pool.close();
    await repo.close();
    removeTemp(scratch);
  }
  opts.log(`micro: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const rate = (c: Case, t: Task | undefined): { value: number; rme: number; samples: number } => {
    const r = t?.result;
    if (!r || !('latency' in r)) throw new Error(`micro-benchmark ${t?.name ?? c.stage} did not complete (${r?.state})`);
    const s = r.latency.mean / 1000;
    const value = c.bytes !== undefined ? c.bytes / s / MB : c.ops! / s;
    return { value, rme: r.latency.rme, samples: r.latency.samplesCount };
  };
  const out: MicroResult[] = [];
  for (const c of cases) {
    const own = rate(c, bench.getTask(c.stage));
    if (c.stage.startsWith('seal medium, text-like (sealData')) sealOneThread = own.value;
    let limit: number | null = null;
    if (c.limit && 'fn' in c.limit) {
      const l = { ...c, bytes: c.bytes, ops: c.ops };
      limit = rate(l, bench.getTask(limitTasks.get(c)!)).value;
    } else if (c.limit) limit = c.limit.value();
    out.push({
      stage: c.stage,
      unit: c.bytes !== undefined ? 'MB/s' : 'ops/s',
      value: own.value,
      rme: own.rme,
      samples: own.samples,
      limit_name: c.limit?.name ?? null,
      limit,
      of_limit: limit ? own.value / limit : null,
      note: c.note?.() ?? '',
    });
  }
  return out;
}

export function microRows(results: MicroResult[]): { header: string[]; rows: string[][] } {
  const n = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1));
  return {
    header: ['stage', 'rate', '±%', 'limit (same bytes, this machine)', 'limit rate', 'of limit', 'note'],
    rows: results.map((r) => [
      r.stage,
      `${n(r.value)} ${r.unit}`,
      r.rme.toFixed(1),
      r.limit_name ?? '-',
      r.limit !== null ? `${n(r.limit)} ${r.unit}` : '-',
      r.of_limit !== null ? `${(r.of_limit * 100).toFixed(0)}%` : '-',
      r.note,
    ]),
  };
}

export const microTitle = (quick: boolean) =>
  `Micro-benchmarks (in process, 16 MiB buffer, 1 MiB chunks; MB = 1e6 bytes; tinybench >= ${quick ? '100 ms and 2' : '600 ms and 4'} iterations per task; ${os.availableParallelism()} cores)`;
