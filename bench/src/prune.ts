import crypto from 'node:crypto';
import path from 'node:path';
import { BlobType, chunkId, deriveKeys, emptyStats, Id, newMasterKey, parseBlob, PruneReport, Repository, sealData, sealTree, toHex, TreeBuilder } from '@keep/core';
import { Rng } from './datagen.js';
import { keepdBinary, run, RunResult } from './tools.js';
import { fmtBytes, fmtInt, fmtNum, removeTemp, tempDir } from './util.js';

/**
 * Issue 5: prune on a repository of many small blobs. The repository is built
 * in process with @keep/core (the same sealing, packs and index as a backup,
 * minus the file system walk) because ~100k blobs through the CLI would take
 * minutes; then `keepd forget --keep-last` drops the older half of the
 * snapshots and `keepd prune` runs as a child process "2 hours later"
 * (KEEP_CLOCK_OFFSET_MS), past the 1 h GC grace, so the garbage is collectable.
 *
 * The history: S snapshots of one source. Generation 0 (40% of the files) is
 * mostly stable; later generations are churn (files that live one or two
 * snapshots, some that stay). Each file is 1-3 chunks of 1-4 KiB; each
 * directory holds 256 files, under one directory per generation, so unchanged
 * directories give identical tree blobs shared between snapshots.
 * The bench knows exactly which blobs the kept snapshots reach, and checks
 * prune's count against it; `keepd check` then proves the kept snapshots whole.
 */

export interface PruneBenchOptions {
  mode: 'quick' | 'default' | 'full';
  log: (line: string) => void;
}

export interface PruneBenchResult {
  mode: string;
  label: string;
  target_blobs: number;
  snapshots: number;
  snapshots_forgotten: number;
  files: number;
  data_blobs: number;
  tree_blobs: number;
  blobs_before: number;
  packs_before: number;
  bytes_before: number;
  build_s: number;
  expected_removed: number;
  forget: { wall_s: number; peak_rss_mib: number | null; removed: number };
  prune: { wall_s: number; peak_rss_mib: number | null; cpu_s: number | null; report: PruneReport };
  /** an immediate second prune: nothing to collect, so the fixed cost of mark + scan */
  prune_again: { wall_s: number; peak_rss_mib: number | null; report: PruneReport };
  blobs_after: number;
  check: { wall_s: number; ok: boolean; blobs: number; snapshots: number; errors: string[] };
  problems: string[];
}

const SNAPSHOTS = 6;
const FILES_PER_DIR = 256;
const HOUR = 3600 * 1000;
export const CLOCK_OFFSET_MS = 2 * HOUR;

interface FileSpec {
  gen: number;
  /** last snapshot that holds the file */
  death: number;
  chunks: Id[];
  size: number;
  dir: number;
  idx: number;
}

export async function runPruneBench(opts: PruneBenchOptions): Promise<PruneBenchResult> {
  const target = { quick: 30_000, default: 120_000, full: 300_000 }[opts.mode];
  const scratch = tempDir('prune');
  const problems: string[] = [];
  try {
    const data = path.join(scratch, 'data');
    const t0 = performance.now();
    opts.log(`prune: building a repository of ~${fmtInt(target)} blobs with @keep/core`);
    const built = await build(data, target);
    const build_s = (performance.now() - t0) / 1000;
    opts.log(
      `prune: built ${fmtInt(built.blobs)} blobs (${fmtInt(built.dataBlobs)} data, ${fmtInt(built.treeBlobs)} trees) in ${built.packs} packs, ${fmtBytes(built.bytes)}, ${SNAPSHOTS} snapshots, in ${build_s.toFixed(1)} s`,
    );

    const bin = keepdBinary();
    const keep = SNAPSHOTS / 2;
    const env = { ...process.env, KEEP_CLOCK_OFFSET_MS: String(CLOCK_OFFSET_MS) };
    const forget = await run(bin, ['forget', '--data', data, '--keep-last', String(keep), '--json'], { env });
    const fj = JSON.parse(forget.stdout) as { groups: { removed: string[] }[] };
    const forgotten = fj.groups.reduce((a, g) => a + g.removed.length, 0);
    if (forgotten !== SNAPSHOTS - keep) problems.push(`keepd forget --keep-last ${keep} removed ${forgotten} snapshots, expected ${SNAPSHOTS - keep}`);
    opts.log(`prune: keepd forget --keep-last ${keep}: ${forgotten} snapshots forgotten in ${forget.wall_s.toFixed(2)} s`);

    const p1 = await run(bin, ['prune', '--data', data, '--json'], { env });
    const r1 = JSON.parse(p1.stdout) as PruneReport;
    opts.log(
      `prune: keepd prune: ${fmtInt(r1.blobs_removed)} of ${fmtInt(r1.blobs_before)} blobs removed, ${r1.packs_repacked} packs repacked, ${r1.packs_deleted} deleted, in ${p1.wall_s.toFixed(2)} s (peak RSS ${rss(p1)} MiB)`,
    );
    if (r1.blobs_before !== built.blobs) problems.push(`prune saw ${r1.blobs_before} blobs before, the build stored ${built.blobs}`);
    if (r1.blobs_removed !== built.blobs - built.liveAfterForget) {
      problems.push(`prune removed ${r1.blobs_removed} blobs; the kept snapshots leave ${built.blobs - built.liveAfterForget} unreferenced`);
    }
    const p2 = await run(bin, ['prune', '--data', data, '--json'], { env });
    const r2 = JSON.parse(p2.stdout) as PruneReport;
    if (r2.blobs_removed !== 0) problems.push(`a second prune removed ${r2.blobs_removed} more blobs (expected 0)`);
    opts.log(`prune: second keepd prune (nothing to collect): ${p2.wall_s.toFixed(2)} s`);

    const c = await run(bin, ['check', '--data', data, '--json'], { env }).catch((e: Error) => ({ failed: e.message }));
    let check: PruneBenchResult['check'];
    if ('failed' in c) {
      check = { wall_s: NaN, ok: false, blobs: NaN, snapshots: NaN, errors: [c.failed] };
    } else {
      const cj = JSON.parse(c.stdout) as { ok: boolean; blobs: number; snapshots: number; errors: string[] };
      check = { wall_s: c.wall_s, ok: cj.ok, blobs: cj.blobs, snapshots: cj.snapshots, errors: cj.errors.slice(0, 5) };
    }
    if (!check.ok) problems.push(`keepd check after prune failed: ${check.errors.join('; ')}`);
    if (check.ok && check.blobs !== built.liveAfterForget) problems.push(`after prune the index holds ${check.blobs} blobs; the kept snapshots reach ${built.liveAfterForget}`);
    opts.log(`prune: keepd check after prune: ${check.ok ? 'ok' : 'FAILED'} (${fmtInt(check.blobs)} blobs, ${check.snapshots} snapshots) in ${fmtNum(check.wall_s, 2)} s`);

    return {
      mode: opts.mode,
      label: opts.mode === 'quick' ? `QUICK MODE: ~${fmtInt(target)} blobs (the issue-5 figure needs the default run's ~120,000)` : `~${fmtInt(target)} blobs`,
      target_blobs: target,
      snapshots: SNAPSHOTS,
      snapshots_forgotten: forgotten,
      files: built.files,
      data_blobs: built.dataBlobs,
      tree_blobs: built.treeBlobs,
      blobs_before: built.blobs,
      packs_before: built.packs,
      bytes_before: built.bytes,
      build_s,
      expected_removed: built.blobs - built.liveAfterForget,
      forget: { wall_s: forget.wall_s, peak_rss_mib: rssN(forget), removed: forgotten },
      prune: { wall_s: p1.wall_s, peak_rss_mib: rssN(p1), cpu_s: p1.cpu_s, report: r1 },
      prune_again: { wall_s: p2.wall_s, peak_rss_mib: rssN(p2), report: r2 },
      blobs_after: r1.blobs_before - r1.blobs_removed,
      check,
      problems,
    };
  } finally {
    removeTemp(scratch);
  }
}

const rssN = (r: RunResult) => (r.peak_rss_kib === null ? null : r.peak_rss_kib / 1024);
const rss = (r: RunResult) => fmtNum(rssN(r), 1);

async function build(dir: string, targetBlobs: number) {
  const rng = new Rng(424242);
  const repo = await Repository.init(dir);
  try {
    const keys = deriveKeys(newMasterKey());
    const salt = crypto.randomBytes(16);
    const w = repo.openWriter();

    // the files, by generation
    const files: FileSpec[] = [];
    const avgChunks = 2;
    const nFiles = Math.round(targetBlobs / avgChunks);
    const genFiles = (g: number) => (g === 0 ? Math.round(nFiles * 0.4) : Math.round((nFiles * 0.6) / (SNAPSHOTS - 1)));
    let dirs = 0;
    const byGen: FileSpec[][] = [];
    for (let g = 0; g < SNAPSHOTS; g++) {
      const list: FileSpec[] = [];
      for (let i = 0; i < genFiles(g); i++) {
        let death: number;
        if (g === 0) death = rng.float() < 0.85 ? SNAPSHOTS - 1 : rng.int(SNAPSHOTS);
        else death = rng.float() < 0.25 ? SNAPSHOTS - 1 : Math.min(SNAPSHOTS - 1, g + rng.int(2));
        if (i % FILES_PER_DIR === 0) dirs++;
        list.push({ gen: g, death, chunks: [], size: 0, dir: dirs - 1, idx: files.length + list.length });
      }
      byGen.push(list);
      files.push(...list);
    }

    // data blobs, written generation by generation (as the backups would have)
    let dataBlobs = 0;
    let treeBlobs = 0;
    const mtime = Math.floor(Date.now() / 1000) - SNAPSHOTS * 3600;
    const storeTree = async (b: TreeBuilder): Promise<Id> => {
      const { edges, payload } = b.build();
      const { id, bytes } = sealTree(keys, salt, edges, payload, 'low');
      if (await w.add(id, bytes)) treeBlobs++;
      return id;
    };
    const entry = (name: string, size: number, ino: number) => ({
      name: Buffer.from(name),
      mode: 0o100644,
      uid: 1000,
      gid: 1000,
      mtime: [mtime, 0] as [number, number],
      ctime: [mtime, 0] as [number, number],
      ino,
      dev: 2049,
      nlink: 1,
      size,
    });
    const live = new Set<string>();
    const snapIds: string[] = [];
    for (let s = 0; s < SNAPSHOTS; s++) {
      for (const f of byGen[s]) {
        const k = 1 + rng.int(3);
        for (let c = 0; c < k; c++) {
          const plain = crypto.randomBytes(1024 + rng.int(3073));
          const id = chunkId(keys, plain);
          await w.add(id, sealData(keys, salt, id, plain, 'none'));
          f.chunks.push(id);
          f.size += plain.length;
          dataBlobs++;
        }
      }
      // snapshot s: every file born at or before s that is still alive
      const alive = files.filter((f) => f.gen <= s && f.death >= s);
      const genTrees: Id[] = [];
      const genNames: string[] = [];
      for (let g = 0; g <= s; g++) {
        const inGen = alive.filter((f) => f.gen === g);
        if (!inGen.length) continue;
        const gb = new TreeBuilder();
        let cur = -1;
        let db: TreeBuilder | undefined;
        const flushDir = async () => {
          if (db) gb.addDir({ ...entry(`d-${String(cur).padStart(5, '0')}`, 0, 1_000_000 + cur), mode: 0o40755, type: 'dir' }, await storeTree(db));
        };
        for (const f of inGen) {
          if (f.dir !== cur) {
            await flushDir();
            cur = f.dir;
            db = new TreeBuilder();
          }
          db!.addFile({ ...entry(`f-${String(f.idx).padStart(7, '0')}.dat`, f.size, f.idx + 1), type: 'file' }, f.chunks);
        }
        await flushDir();
        genTrees.push(await storeTree(gb));
        genNames.push(`gen-${g}`);
      }
      const root = new TreeBuilder();
      genTrees.forEach((t, i) => root.addDir({ ...entry(genNames[i], 0, 900_000 + i), mode: 0o40755, type: 'dir' }, t));
      const rootId = await storeTree(root);
      await w.flush();
      const snap = await repo.commitSnapshot({
        source: 'bench-prune',
        host: 'bench',
        time: new Date(Date.now() - (SNAPSHOTS - s) * HOUR).toISOString(),
        root: toHex(rootId),
        tags: [],
        stats: { ...emptyStats(), files: alive.length, bytes: alive.reduce((a, f) => a + f.size, 0) },
      });
      snapIds.push(snap.id);
      // what the kept snapshots (the newest half) reach: walk it from the index like prune will, to count trees exactly
      if (s >= SNAPSHOTS / 2) await reach(repo, rootId, live);
    }
    await w.flush();
    return {
      files: files.length,
      dataBlobs,
      treeBlobs,
      blobs: repo.blobCount(),
      packs: repo.packCount(),
      bytes: repo.storedBytes(),
      liveAfterForget: live.size,
      snapIds,
    };
  } finally {
    await repo.close();
  }
}

/** Add every blob reachable from `root` to `into` (tree edges are plaintext: no key needed). */
async function reach(repo: Repository, root: Id, into: Set<string>): Promise<void> {
  const stack: Id[] = [root];
  while (stack.length) {
    const id = stack.pop()!;
    const hex = toHex(id);
    if (into.has(hex)) continue;
    into.add(hex);
    const { edges } = parseBlob(await repo.readBlob(id));
    for (const e of edges) {
      if (e.type === BlobType.Tree) stack.push(e.id);
      else into.add(toHex(e.id));
    }
  }
}

export function pruneRows(r: PruneBenchResult): { header: string[]; rows: string[][] } {
  const p = r.prune.report;
  const rows: string[][] = [
    ['repository built in process (@keep/core)', `${fmtInt(r.blobs_before)} blobs`, `${fmtInt(r.data_blobs)} data (1-4 KiB) + ${fmtInt(r.tree_blobs)} trees, ${r.packs_before} packs, ${fmtBytes(r.bytes_before)}, ${r.snapshots} snapshots, built in ${fmtNum(r.build_s, 1)} s`],
    [`keepd forget --keep-last ${r.snapshots - r.snapshots_forgotten}`, `${fmtNum(r.forget.wall_s, 2)} s`, `${r.snapshots_forgotten} of ${r.snapshots} snapshots forgotten; peak RSS ${fmtNum(r.forget.peak_rss_mib, 1)} MiB`],
    ['blobs before prune', fmtInt(p.blobs_before), ''],
    ['blobs live (marked)', fmtInt(p.blobs_live), ''],
    ['blobs removed', fmtInt(p.blobs_removed), `expected ${fmtInt(r.expected_removed)} (what the kept snapshots no longer reach): ${p.blobs_removed === r.expected_removed ? 'exact' : 'MISMATCH'}`],
    ['blobs after prune', fmtInt(r.blobs_after), ''],
    ['packs before / deleted / repacked', `${p.packs_before} / ${p.packs_deleted} / ${p.packs_repacked}`, `${fmtBytes(p.bytes_repacked)} of live blobs copied`],
    ['stored bytes before -> after (MB)', `${fmtNum(p.bytes_before / 1e6, 1)} -> ${fmtNum(p.bytes_after / 1e6, 1)}`, `${fmtBytes(p.bytes_before - p.bytes_after)} freed`],
    ['prune wall time (s)', fmtNum(r.prune.wall_s, 2), 'keepd prune process, start-up included'],
    ['prune duration_s (s)', fmtNum(p.duration_s, 2), "keepd's own report (mark, sweep, repack, delete)"],
    ['prune peak RSS (MiB)', fmtNum(r.prune.peak_rss_mib, 1), ''],
    ['prune CPU (s)', fmtNum(r.prune.cpu_s, 2), 'user + system'],
    ['second prune, nothing to collect (s)', fmtNum(r.prune_again.wall_s, 2), `peak RSS ${fmtNum(r.prune_again.peak_rss_mib, 1)} MiB, ${r.prune_again.report.blobs_removed} removed: the fixed cost of mark + scan`],
    ['keepd check after prune', r.check.ok ? 'ok' : 'FAILED', `${fmtInt(r.check.blobs)} blobs, ${r.check.snapshots} snapshots, ${fmtNum(r.check.wall_s, 2)} s`],
  ];
  return { header: ['prune (issue 5)', 'value', 'detail'], rows };
}

export const pruneTitle = (r: PruneBenchResult) =>
  `Prune (issue 5) — ${r.label}; keepd forget + prune as child processes with KEEP_CLOCK_OFFSET_MS=${CLOCK_OFFSET_MS} (2 h later, past the 1 h GC grace)`;
