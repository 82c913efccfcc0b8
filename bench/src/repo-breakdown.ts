/**
 * Where a repository's bytes are (issue 21, "repository size at most 0.95x
 * restic's"): a local Keep repository broken into blob payloads, per-blob
 * overhead (blob header, codec byte, GCM tag), pack trailers, index segments
 * and index.mdb, with blob counts per codec and the data blobs' sizes; and,
 * given one, a local restic repository broken into the same parts from its
 * index (`restic cat index`). Reads only; decrypts blobs to learn their codec.
 *
 *   KEEP_PASSWORD=... [RESTIC_PASSWORD=...] node bench/dist/repo-breakdown.js KEEP_REPO [RESTIC_REPO]
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeIndexSegment, decompressBlob, deriveKeys, EDGE_SIZE, HEADER_SIZE, KeyFile, openMasterKey, parseBlob, TAG_SIZE, TRAILER_ENTRY_SIZE } from '@keep/core';
import { dirBytes, fmtInt, textTable } from './util.js';

interface Part {
  part: string;
  keep: number;
  restic?: number;
}

interface BlobFigures {
  count: number;
  plain: number;
  /** encoded bytes inside the encryption, codec byte excluded */
  payload: number;
  /** blob count by codec */
  codecs: number[];
}

const emptyFigures = (): BlobFigures => ({ count: 0, plain: 0, payload: 0, codecs: [0, 0, 0] });

function keepBreakdown(repo: string, password: string): { parts: Part[]; data: BlobFigures; tree: BlobFigures; edges: number; dataSizes: number[] } {
  const keyDir = path.join(repo, 'keys');
  const files = fs.readdirSync(keyDir).map((f) => JSON.parse(fs.readFileSync(path.join(keyDir, f), 'utf8')) as KeyFile);
  const keys = deriveKeys(openMasterKey(files, password).master);
  const packFiles = new Map<string, string>();
  for (const d of fs.readdirSync(path.join(repo, 'packs'))) for (const f of fs.readdirSync(path.join(repo, 'packs', d))) packFiles.set(f.replace(/\.pack$/, ''), path.join(repo, 'packs', d, f));
  const data = emptyFigures();
  const tree = emptyFigures();
  const dataSizes: number[] = [];
  let edges = 0;
  let blobs = 0;
  let seen = 0;
  for (const name of fs.readdirSync(path.join(repo, 'index')).sort()) {
    for (const p of decodeIndexSegment(fs.readFileSync(path.join(repo, 'index', name)), name)) {
      const file = packFiles.get(p.id);
      if (!file) continue;
      seen++;
      const pack = fs.readFileSync(file);
      for (const e of p.entries) {
        const stored = pack.subarray(e.offset, e.offset + e.length);
        const b = parseBlob(stored);
        const d = crypto.createDecipheriv('aes-256-gcm', keys.sealKey(Buffer.from(b.salt)), b.nonce);
        const sealed = d.update(stored.subarray(b.bodyOffset, stored.length - TAG_SIZE));
        const plain = decompressBlob(sealed[0], sealed.subarray(1));
        const f = b.type === 0 ? data : tree;
        f.count++;
        f.plain += plain.length;
        f.payload += sealed.length - 1;
        f.codecs[sealed[0]] = (f.codecs[sealed[0]] ?? 0) + 1;
        edges += b.edges.length;
        blobs++;
        if (b.type === 0) dataSizes.push(plain.length);
      }
    }
  }
  if (seen !== packFiles.size) throw new Error(`${packFiles.size - seen} packs are in no index segment: this tool reads segments only`);
  const packBytes = dirBytes(path.join(repo, 'packs'));
  const blobOverhead = blobs * (HEADER_SIZE + 1 + TAG_SIZE);
  const edgeBytes = edges * EDGE_SIZE + tree.count * 4;
  const trailers = blobs * TRAILER_ENTRY_SIZE;
  const parts: Part[] = [
    { part: 'data blob payloads (encoded)', keep: data.payload },
    { part: 'tree blob payloads (encoded)', keep: tree.payload },
    { part: 'per-blob crypto + framing (header, codec, tag)', keep: blobOverhead },
    { part: 'tree edges (plaintext ids; restic: inside its tree payloads)', keep: edgeBytes },
    { part: 'pack headers + trailers + footers', keep: packBytes - data.payload - tree.payload - blobOverhead - edgeBytes },
    { part: '  of which trailer entries', keep: trailers },
    { part: 'index segments / restic index', keep: dirBytes(path.join(repo, 'index')) },
    { part: 'index.mdb (restic: its cache, outside the repository)', keep: fs.statSync(path.join(repo, 'index.mdb')).size },
    { part: 'snapshots, keys, config, other', keep: dirBytes(repo) - packBytes - dirBytes(path.join(repo, 'index')) - fs.statSync(path.join(repo, 'index.mdb')).size },
    { part: 'total (bytes of every file)', keep: dirBytes(repo) },
  ];
  return { parts, data, tree, edges, dataSizes };
}

interface ResticBlob {
  type: string;
  length: number;
  uncompressed_length?: number;
}

function resticBreakdown(repo: string): Map<string, number> {
  const env = { ...process.env, RESTIC_REPOSITORY: repo };
  const restic = (...args: string[]) => execFileSync('restic', args, { env, maxBuffer: 1 << 28 }).toString();
  let data = 0;
  let tree = 0;
  let count = 0;
  for (const id of restic('list', 'index').split('\n').filter(Boolean)) {
    const index = JSON.parse(restic('cat', 'index', id)) as { packs: { blobs: ResticBlob[] }[] };
    for (const p of index.packs)
      for (const b of p.blobs) {
        // restic's blob length includes its crypto (16 IV + 16 MAC): split as for Keep
        if (b.type === 'data') data += b.length - 32;
        else tree += b.length - 32;
        count++;
      }
  }
  const packs = dirBytes(path.join(repo, 'data'));
  const m = new Map<string, number>([
    ['data blob payloads (encoded)', data],
    ['tree blob payloads (encoded)', tree],
    ['per-blob crypto + framing (header, codec, tag)', count * 32],
    ['tree edges (plaintext ids; restic: inside its tree payloads)', 0],
    ['pack headers + trailers + footers', packs - data - tree - count * 32],
    ['index segments / restic index', dirBytes(path.join(repo, 'index'))],
    ['index.mdb (restic: its cache, outside the repository)', 0],
    ['snapshots, keys, config, other', dirBytes(repo) - packs - dirBytes(path.join(repo, 'index'))],
    ['total (bytes of every file)', dirBytes(repo)],
  ]);
  return m;
}

function main(): void {
  const [keepRepo, resticRepo] = process.argv.slice(2);
  const password = process.env.KEEP_PASSWORD;
  if (!keepRepo || !password) throw new Error('usage: KEEP_PASSWORD=... [RESTIC_PASSWORD=...] node bench/dist/repo-breakdown.js KEEP_REPO [RESTIC_REPO]');
  const k = keepBreakdown(keepRepo, password);
  const r = resticRepo ? resticBreakdown(resticRepo) : undefined;
  const rows = k.parts.map((p) => {
    const rb = r?.get(p.part);
    return [p.part, fmtInt(p.keep), rb === undefined ? '' : fmtInt(rb), rb ? `${(p.keep / rb).toFixed(2)}x` : ''];
  });
  console.log(textTable(['part', 'keep bytes', 'restic bytes', 'keep/restic'], rows, 'repository breakdown'));
  const sizes = [...k.dataSizes].sort((a, b) => a - b);
  const q = (x: number) => sizes[Math.floor(x * (sizes.length - 1))] ?? 0;
  for (const [what, f] of [['data', k.data], ['tree', k.tree]] as const)
    console.log(`${what} blobs: ${fmtInt(f.count)}, plaintext ${fmtInt(f.plain)} -> ${fmtInt(f.payload)} encoded; by codec (raw, zstd, zstd+dictionary): ${f.codecs.join(', ')}`);
  console.log(`data blob plaintext sizes: p10 ${q(0.1)}, p50 ${q(0.5)}, p90 ${q(0.9)}, p99 ${q(0.99)}, max ${q(1)}; under 4 KiB: ${sizes.filter((s) => s < 4096).length}; tree edges: ${k.edges}`);
}

main();
