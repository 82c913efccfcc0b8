/**
 * The host packages (scripts/package.mjs): unpacked into an empty directory and
 * run with a PATH that holds no node (only sh and the two coreutils the
 * launchers call), they back up and restore on their own: an embedded
 * repository with bin/keep, and bin/keep against bin/keepd over gRPC.
 * The packages are rebuilt when older than what goes into them.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';

const tmp = tempDirs();
const version = (ws: string): string => JSON.parse(fs.readFileSync(path.join(ROOT, ws, 'package.json'), 'utf8')).version;
const AGENT = `keep-agent-${version('agent')}-linux-x64`;
const KEEPD = `keepd-${version('server')}-linux-x64`;
// what a package is made of: when any is newer than the archive, the archive is stale
const INPUTS = [
  'agent/bin/keep.js', 'agent/dist/keep.cjs', 'agent/dist/launch.mjs', 'agent/dist/seal-worker.js', 'agent/dist/restore/restore-worker.js',
  'server/bin/keepd.js', 'server/dist/keepd.mjs', 'server/dist/seal-worker.js',
  'scripts/package.mjs', 'scripts/package/runtime-deps.mjs', 'package.json',
];

function archiveOf(name: string): string | undefined {
  return ['tar.gz', 'tar.xz'].map((ext) => path.join(ROOT, 'dist', `${name}.${ext}`)).find((f) => fs.existsSync(f));
}

function packagesAreFresh(): boolean {
  const newest = Math.max(...INPUTS.map((f) => fs.statSync(path.join(ROOT, f)).mtimeMs));
  return [AGENT, KEEPD].every((n) => {
    const a = archiveOf(n);
    return a !== undefined && fs.statSync(a).mtimeMs >= newest;
  });
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let home = '';
let pathDir = '';
/** Exactly this environment: no node on PATH, a private HOME (the agent's caches), the KEEP_* given. */
function hostEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: pathDir, HOME: home, LANG: 'C', ...extra };
}

function run(bin: string, args: string[], extra: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: hostEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(bin: string, args: string[], extra: Record<string, string> = {}): Promise<string> {
  const r = await run(bin, args, extra);
  if (r.code !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')} exited ${r.code}\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** `keepd serve` on a free loopback port: resolves with the port once keepd logs "listening". */
function serve(bin: string, data: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(bin, ['serve', '--data', data, '--listen', '127.0.0.1:0'], { env: hostEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr!.on('data', (b: Buffer) => (out += b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keepd did not listen within 30 s:\n${out}`)), 30_000);
    child.on('close', (code) => reject(new Error(`keepd exited ${code}:\n${out}`)));
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      for (const line of out.split('\n')) {
        if (!line.includes('"listening"')) continue;
        clearTimeout(timer);
        resolve({ child, port: JSON.parse(line).port as number });
      }
    });
  });
}

/** Every regular file under `dir`: relative path → content. */
function tree(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, rel);
    if (fs.statSync(p).isFile()) files[rel] = fs.readFileSync(p).toString('base64');
  }
  return files;
}

let keepdProcess: ChildProcess | undefined;
afterAll(() => {
  keepdProcess?.kill('SIGKILL');
});

describe.skipIf(`${process.platform}-${process.arch}` !== 'linux-x64')('the linux-x64 packages', () => {
  let root = '';
  let keep = '';
  let keepd = '';
  let source = '';

  beforeAll(() => {
    if (!packagesAreFresh()) execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'package.mjs')], { cwd: ROOT, stdio: 'inherit', timeout: 180_000 });
    root = tmp.make('keep-package-');
    home = path.join(root, 'home');
    pathDir = path.join(root, 'path');
    fs.mkdirSync(home);
    fs.mkdirSync(pathDir);
    for (const tool of ['sh', 'readlink', 'dirname']) fs.symlinkSync(execFileSync('/bin/sh', ['-c', `command -v ${tool}`]).toString().trim(), path.join(pathDir, tool));
    for (const name of [AGENT, KEEPD]) execFileSync('tar', ['-xf', archiveOf(name)!, '-C', root]);
    keep = path.join(root, AGENT, 'bin', 'keep');
    keepd = path.join(root, KEEPD, 'bin', 'keepd');
    source = path.join(root, 'source');
    fs.mkdirSync(path.join(source, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(source, 'notes.txt'), 'packaged keep\n');
    fs.writeFileSync(path.join(source, 'sub', 'random.bin'), Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 2654435761) >>> 24)));
  }, 240_000);

  it('finds no node on its PATH, and each package carries its own', () => {
    expect(spawnSync('/bin/sh', ['-c', 'command -v node'], { env: hostEnv() }).status).not.toBe(0);
    for (const name of [AGENT, KEEPD]) expect(fs.statSync(path.join(root, name, 'runtime', 'node')).mode & 0o111).not.toBe(0);
  });

  it('bin/keep and bin/keepd start through a symbolic link elsewhere (as from /usr/local/bin)', async () => {
    const links = path.join(root, 'links');
    fs.mkdirSync(links);
    fs.symlinkSync(keep, path.join(links, 'keep'));
    fs.symlinkSync(keepd, path.join(links, 'keepd'));
    expect(await ok(path.join(links, 'keep'), ['--help'])).toContain('usage: keep');
    expect(await ok(path.join(links, 'keepd'), ['--help'])).toContain('usage: keepd');
  });

  it('bin/keep backs up to and restores from an embedded repository', async () => {
    const env = { KEEP_REPO: path.join(root, 'embedded'), KEEP_PASSWORD: 'package test passphrase', KEEP_NO_PROGRESS: '1' };
    expect(await ok(keep, ['--help'])).toContain('usage: keep');
    await ok(keep, ['init', '--kdf-cost', '10'], env);
    await ok(keep, ['backup', source], env);
    // the launcher's V8 code cache (agent/src/startup/code-cache.ts) works from the package too
    expect(fs.existsSync(path.join(home, '.cache', 'keep', 'code-backup.v8'))).toBe(true);
    const target = path.join(root, 'restored-embedded');
    await ok(keep, ['restore', 'latest', '--target', target], env);
    expect(tree(path.join(target, source))).toEqual(tree(source));
  });

  it('bin/keep agent check-config validates a config, and keep version names the shipped Node', async () => {
    const config = path.join(root, 'agent.yaml');
    fs.writeFileSync(config, `repository:\n  location: ${path.join(root, 'embedded')}\nstate_dir: ${path.join(root, 'agent-state')}\njobs:\n  - name: notes\n    type: files\n    paths: [${source}]\n    schedule: { every: 15m }\n`);
    expect(await ok(keep, ['agent', 'check-config', '--config', config])).toContain('ok, 1 job');
    fs.writeFileSync(config, 'jobs:\n  - name: x\n    type: files\n    paths: 7\n');
    const bad = await run(keep, ['agent', 'check-config', '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(new RegExp(`${config}:\\d+: `));
    expect(await ok(keep, ['version'])).toMatch(/running on node v24\./);
  });

  it('bin/keepd serves a repository that bin/keep backs up to and restores from over gRPC', async () => {
    const data = path.join(root, 'keepd-data');
    await ok(keepd, ['init', '--data', data]);
    const token = JSON.parse(await ok(keepd, ['token', 'create', '--data', data, '--role', 'agent', '--all-sources', '--json'])).token as string;
    const served = await serve(keepd, data);
    keepdProcess = served.child;
    const env = { KEEP_REPO: `grpc://127.0.0.1:${served.port}`, KEEP_TOKEN: token, KEEP_PASSWORD: 'package test passphrase', KEEP_NO_PROGRESS: '1' };
    await ok(keep, ['init', '--kdf-cost', '10'], env);
    await ok(keep, ['backup', source, '--source', 'packaged'], env);
    const snapshots = JSON.parse(await ok(keep, ['snapshots', '--json'], env));
    expect(JSON.stringify(snapshots)).toContain('packaged');
    const target = path.join(root, 'restored-grpc');
    await ok(keep, ['restore', 'latest', '--source', 'packaged', '--target', target], env);
    expect(tree(path.join(target, source))).toEqual(tree(source));
    served.child.kill('SIGTERM');
    const code = await new Promise((resolve) => served.child.once('exit', (c, s) => resolve(c ?? s)));
    expect(code).toBe(0);
  });
});
