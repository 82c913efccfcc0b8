/**
 * The bench's CPU stage table (issue 21, bench/src/cpuprofile-stages.ts): a real `node --cpu-prof`
 * profile of a process that only compresses through the engine's zstd path (packages/core
 * compress.js) puts most of its time under "compression", and the table scales CPU-s per GB to the CPU given with --cpu.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';

const tmp = tempDirs();

const WORK = `
const { compressBlob } = await import(${JSON.stringify(path.join(ROOT, 'packages/core/dist/compress.js'))});
const data = Buffer.alloc(4 << 20);
for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251 < 60 ? i & 0xff : 32;
const end = Date.now() + 1500;
while (Date.now() < end) compressBlob(data, 'high');
`;

describe('bench stage table', () => {
  it('puts the time of a compressing process under "compression", in CPU-s per GB of the --cpu given', () => {
    const dir = tmp.make('keep-stage-');
    const r = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--input-type=module', '-e', WORK], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).length).toBeGreaterThanOrEqual(1);
    const t = spawnSync(process.execPath, [path.join(ROOT, 'bench/dist/stage-table.js'), '--bytes', '2000000000', '--cpu', '4', dir], { encoding: 'utf8', timeout: 60_000 });
    expect(t.status, t.stderr).toBe(0);
    const rows = new Map(
      t.stdout
        .split('\n')
        .map((l) => /^(\S.*?)\s{2,}([\d.]+)\s+([\d.]+)%\s+([\d.]+|n\/a)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1], { share: Number(m[3]), perGb: m[4] }]),
    );
    expect(rows.get('compression')?.share, t.stdout).toBeGreaterThan(60);
    // 4 CPU-s over 2 GB: the total row is 2.00 CPU-s per GB whatever the profile's own seconds
    expect(t.stdout).toMatch(/^total\s+[\d.]+\s+100%\s+2\.00$/m);
  });

  it('names a function of the agent\'s one-file bundle by its source file (the bundle\'s source map)', async () => {
    const { originalFile } = (await import(path.join(ROOT, 'bench/dist/source-map.js'))) as { originalFile: (url: string, line: number, column: number) => string };
    const bundle = path.join(ROOT, 'agent/dist/keep.cjs');
    const lines = fs.readFileSync(bundle, 'utf8').split('\n');
    const line = lines.findIndex((l) => l.includes('function compressBlob('));
    expect(line).toBeGreaterThan(0);
    const column = lines[line].indexOf('function compressBlob(');
    expect(originalFile(`file://${bundle}`, line, column)).toBe(path.join(ROOT, 'packages/core/dist/compress.js'));
    // a file without a source map keeps its own name
    expect(originalFile('node:fs', 1, 1)).toBe('node:fs');
  });
});
