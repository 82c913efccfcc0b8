/**
 * The project runs on the Node it pins (package.json's optionalDependencies
 * node-<platform>-<arch>, from the npm registry; scripts/link-node.mjs makes it
 * node_modules/.bin/node): vitest itself, and the keep and keepd the tests start
 * through their launchers (`exec node`, found on PATH). A probe preloaded
 * through NODE_OPTIONS reports the runtime from inside each real process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';
import { keepdInit, killAllKeepd, runKeep, runKeepd, startKeepd } from './keepd-harness.js';

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const pinned: string | undefined = pkg.optionalDependencies?.[`node-${process.platform}-${process.arch}`];
const tmp = tempDirs();

interface Probe {
  pid: number;
  version: string;
  execPath: string;
}

/** NODE_OPTIONS that make every Node process started with them append {pid, version, execPath} to `out`. */
function probeEnv(dir: string): { env: Record<string, string>; read(): Probe[] } {
  const script = path.join(dir, 'probe.cjs');
  const out = path.join(dir, 'probe.jsonl');
  fs.writeFileSync(script, `require('fs').appendFileSync(${JSON.stringify(out)}, JSON.stringify({ pid: process.pid, version: process.version, execPath: process.execPath }) + '\\n');\n`);
  return {
    env: { NODE_OPTIONS: `--require=${script}` },
    read: () => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Probe) : []),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(killAllKeepd);

describe('the pinned Node runtime', () => {
  it('is pinned for this platform and runs vitest', () => {
    expect(pinned, `package.json pins no node-${process.platform}-${process.arch}`).toMatch(/^\d+\.\d+\.\d+$/);
    expect(process.version).toBe(`v${pinned}`);
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(22);
  });

  it('runs keep and keepd, and a signal to keepd reaches Node itself (no shim process between)', async () => {
    const dir = tmp.make('keep-node-runtime-');
    const probe = probeEnv(dir);

    const help = await runKeep(['--help'], probe.env);
    expect(help.code).toBe(0);
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const keepdHelp = await runKeepd(['--help'], { env: probe.env });
    expect(keepdHelp.code).toBe(0);
    const seen = probe.read();
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const p of seen) expect(p.version, p.execPath).toBe(`v${pinned}`);

    const before = seen.length;
    const keepd = await startKeepd(data, { env: probe.env });
    const served = probe.read().slice(before);
    await keepd.stop('SIGKILL');
    const survivors = served.filter((p) => alive(p.pid));
    for (const p of survivors) process.kill(p.pid, 'SIGKILL'); // a Node behind a shim outlives it: never leave one running
    expect(served.map((p) => p.pid)).toEqual([keepd.child.pid]);
    expect(survivors).toEqual([]);
  });
});
