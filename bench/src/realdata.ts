import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The real-data set (issue 21): generation i is release i of each package below, fetched with
 * `npm pack`, unpacked and cached (never in git). Five generations of ~150-190 MB and ~12,000
 * small files each, with the change pattern of real releases: most files rewritten between major
 * versions, a few changed between patch releases.
 */
export const REAL_PACKAGES: Record<string, string[]> = {
  typescript: ['5.0.4', '5.1.6', '5.2.2', '5.3.3', '5.4.5'],
  three: ['0.150.1', '0.151.3', '0.152.2', '0.153.0', '0.154.0'],
  'date-fns': ['2.28.0', '2.29.3', '2.30.0', '3.0.0', '3.6.0'],
  rxjs: ['7.5.7', '7.6.0', '7.7.0', '7.8.0', '7.8.1'],
  lodash: ['4.17.11', '4.17.15', '4.17.19', '4.17.20', '4.17.21'],
  echarts: ['5.3.3', '5.4.0', '5.4.1', '5.4.2', '5.4.3'],
  moment: ['2.29.1', '2.29.2', '2.29.3', '2.29.4', '2.30.1'],
};
export const REAL_GENERATIONS = 5;

/** KEEP_BENCH_CACHE, else ~/.cache/keep-bench. */
export function benchCacheDir(): string {
  return process.env.KEEP_BENCH_CACHE || path.join(os.homedir(), '.cache', 'keep-bench');
}

export interface Generation {
  index: number;
  dir: string;
  bytes: number;
  files: number;
}

function exec(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${err.trim().slice(-400)}`))));
  });
}

/** Run `jobs` at most `n` at a time. */
async function pool(n: number, jobs: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, async () => {
    while (next < jobs.length) await jobs[next++]();
  }));
}

function treeSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    bytes += fs.statSync(path.join(e.parentPath, e.name)).size;
    files++;
  }
  return { bytes, files };
}

/** The generations, fetched and unpacked on first use (tarballs kept in <cache>/tarballs). */
export async function realGenerations(cache: string, log: (l: string) => void): Promise<Generation[]> {
  const tarballs = path.join(cache, 'tarballs');
  const root = path.join(cache, 'realdata');
  fs.mkdirSync(tarballs, { recursive: true });
  fs.mkdirSync(root, { recursive: true });
  const tgz = (name: string, v: string) => path.join(tarballs, `${name}-${v}.tgz`);
  const missing = Object.entries(REAL_PACKAGES).flatMap(([name, vs]) => vs.filter((v) => !fs.existsSync(tgz(name, v))).map((v) => ({ name, v })));
  if (missing.length) {
    log(`bench: real data: fetching ${missing.length} package releases with npm pack into ${tarballs}`);
    // npm writes the file as it downloads: a partial one must not count as cached
    await pool(4, missing.map(({ name, v }) => async () => {
      const tmp = fs.mkdtempSync(path.join(tarballs, '.fetch-'));
      try {
        await exec('npm', ['pack', `${name}@${v}`, '--silent'], tmp);
        fs.renameSync(path.join(tmp, `${name}-${v}.tgz`), tgz(name, v));
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }));
  }
  const gens: Generation[] = [];
  for (let i = 0; i < REAL_GENERATIONS; i++) {
    const dir = path.join(root, `gen-${i + 1}`);
    const done = `${dir}.complete`;
    if (!fs.existsSync(done)) {
      fs.rmSync(dir, { recursive: true, force: true });
      for (const [name, vs] of Object.entries(REAL_PACKAGES)) {
        const into = path.join(dir, name);
        fs.mkdirSync(into, { recursive: true });
        await exec('tar', ['-xzf', tgz(name, vs[i]), '-C', into, '--strip-components=1', '--no-same-owner'], into);
      }
      fs.writeFileSync(done, JSON.stringify(treeSize(dir)));
    }
    const s = JSON.parse(fs.readFileSync(done, 'utf8')) as { bytes: number; files: number };
    gens.push({ index: i + 1, dir, ...s });
  }
  return gens;
}

/**
 * Make `target` hold what `source` holds, touching only what differs (as a deploy of the next
 * release would): files with other bytes rewritten, new ones added, gone ones removed.
 */
export function syncTree(source: string, target: string): { written: number; removed: number } {
  let written = 0;
  let removed = 0;
  const walk = (src: string, dst: string) => {
    fs.mkdirSync(dst, { recursive: true });
    const want = new Map(fs.readdirSync(src, { withFileTypes: true }).map((e) => [e.name, e]));
    for (const e of fs.readdirSync(dst, { withFileTypes: true })) {
      const w = want.get(e.name);
      if (!w || w.isDirectory() !== e.isDirectory()) {
        fs.rmSync(path.join(dst, e.name), { recursive: true, force: true });
        removed++;
      }
    }
    for (const [name, e] of want) {
      const s = path.join(src, name);
      const d = path.join(dst, name);
      if (e.isDirectory()) walk(s, d);
      else if (e.isFile()) {
        const a = fs.readFileSync(s);
        let same = false;
        try {
          same = a.equals(fs.readFileSync(d));
        } catch {
          /* new file */
        }
        if (!same) {
          fs.writeFileSync(d, a);
          written++;
        }
      }
    }
  };
  walk(source, target);
  return { written, removed };
}
