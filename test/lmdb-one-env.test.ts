/**
 * Two opens of one repository in one process (the resident agent opens it
 * once per run, and runs overlap) share one LMDB environment: with two
 * handles, a synchronous write on one (Repository.open's table opens) waited
 * for the write lock that the other's writer thread held while it waited for
 * this same thread to run a transaction callback: both hung for ever (CI:
 * agent-service's files run and a new source's first run). A child process,
 * so the deadlock, if it comes back, fails this test instead of freezing it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';

const tmp = tempDirs();
const CORE = path.join(ROOT, 'packages', 'core', 'dist', 'index.js');

/** Opens a second handle while the first's writer thread waits for the main thread, then uses both. */
const SCRIPT = `
const { Repository } = await import(process.env.CORE);
const dir = process.env.DIR;
const a = await Repository.init(dir);
a.stateStore();
const pending = a.transaction(() => 'callback ran');
// lmdb starts the write on the next turn; hold this thread until its writer has the lock and waits for us
await new Promise((r) => setImmediate(r));
for (const until = Date.now() + 300; Date.now() < until; );
const b = await Repository.open(dir);
b.stateStore();
console.log(await pending);
await b.transaction(() => 'b wrote');
await b.close();
console.log(await a.transaction(() => 'a still writes after b closed'));
await a.close();
console.log('done');
`;

function run(dir: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT], { env: { ...process.env, CORE, DIR: dir }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('one LMDB environment per repository file per process', () => {
  it('a second open while the first handle has a transaction callback pending does not deadlock', async () => {
    const r = await run(path.join(tmp.make('keep-one-env-'), 'repo'));
    expect(r.out.trim().split('\n')).toEqual(['callback ran', 'a still writes after b closed', 'done']);
    expect(r.code).toBe(0);
  }, 90_000);
});
