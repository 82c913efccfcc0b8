/**
 * A single-node Ceph RADOS Gateway for tests, in a temp directory: one mon
 * on 127.0.0.1, one OSD on memstore (RAM, no disk), pools of size 1, and
 * radosgw with the beast frontend on a free loopback port; a user made with
 * radosgw-admin. No auth between the daemons (cephx off): everything binds to
 * loopback and lives for one test file. Ready in ~16 s here.
 *
 * The packages come from scripts/test-deps.mjs (Debian's ceph-mon, ceph-osd,
 * radosgw, ceph-common); without them rgwUnavailable() gives the reason to skip.
 * KEEP_RGW_START_TIMEOUT_MS shortens the wait while debugging; KEEP_RGW_KEEP_DIR=1
 * keeps the directory (ceph.conf, log/) after stop().
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph'];
/** How long the cluster may take to come up on a loaded CI machine. */
const START_TIMEOUT_MS = Number(process.env.KEEP_RGW_START_TIMEOUT_MS ?? 180_000);
/** The memstore OSD ignores SIGTERM (and radosgw may take long): SIGKILL after this. */
const STOP_GRACE_MS = 3_000;

export interface Rgw {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  dir: string;
  stop(): Promise<void>;
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => fs.existsSync(path.join(d || '.', bin)));
}

/** Why an RGW cannot start here, or undefined when it can. */
export function rgwUnavailable(): string | undefined {
  const missing = BINARIES.filter((b) => !onPath(b));
  if (missing.length) return `Ceph not installed (${missing.join(', ')} missing): run node scripts/test-deps.mjs as root on Debian`;
  return undefined;
}

/** A TCP port free on 127.0.0.1 now (the daemons and test servers bind to it next). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitUntil(what: string, deadline: number, check: () => Promise<boolean>, logs: string): Promise<void> {
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`RGW harness: ${what} not ready in ${START_TIMEOUT_MS / 1000} s (logs in ${logs})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Start the cluster; call stop() in afterAll. */
export async function startRgw(): Promise<Rgw> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keep-rgw-'));
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const fsid = crypto.randomUUID();
  const conf = path.join(dir, 'ceph.conf');
  const logs = path.join(dir, 'log');
  for (const d of ['run', 'log', 'mon/ceph-a', 'osd/ceph-0', 'rgw']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# radosgw asks the mon for a "secure" connection, which auth none cannot give
ms mon client mode = crc
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${logs}/$name.log
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
rgw data = ${dir}/rgw
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
ms bind ipv6 = false
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw dns name = 127.0.0.1
`,
  );
  const procs: ChildProcess[] = [];
  // a test process that ends without afterAll (crash, timeout) still takes its daemons with it
  const killAll = () => procs.forEach((p) => p.exitCode === null && p.signalCode === null && p.kill('SIGKILL'));
  process.once('exit', killAll);
  const daemon = (bin: string, args: string[]) => {
    const out = fs.openSync(path.join(logs, `${bin}.out`), 'a');
    const p = spawn(bin, ['-f', '-c', conf, ...args], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    procs.push(p);
    return p;
  };
  const ceph = (...args: string[]) => run('ceph', ['-c', conf, '--connect-timeout', '10', ...args], { timeout: 60_000 });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of [...procs].reverse()) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    process.off('exit', killAll);
    if (!process.env.KEEP_RGW_KEEP_DIR) fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    await run('monmaptool', ['--create', '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, '--fsid', fsid, path.join(dir, 'monmap')]);
    await run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap')]);
    daemon('ceph-mon', ['-i', 'a']);
    await waitUntil('ceph-mon', deadline, async () => (await ceph('mon', 'stat')).stdout.includes('quorum'), logs);
    const osdUuid = crypto.randomUUID();
    const id = (await ceph('osd', 'new', osdUuid)).stdout.trim();
    await run('ceph-osd', ['-c', conf, '-i', id, '--mkfs', '--osd-uuid', osdUuid]);
    daemon('ceph-osd', ['-i', id]);
    await waitUntil('ceph-osd', deadline, async () => /1 up/.test((await ceph('osd', 'stat')).stdout), logs);
    daemon('radosgw', ['-n', 'client.rgw']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    await waitUntil('radosgw', deadline, async () => (await fetch(endpoint)).status < 500, logs);
    const accessKeyId = crypto.randomBytes(10).toString('hex').toUpperCase();
    const secretAccessKey = crypto.randomBytes(20).toString('hex');
    await run('radosgw-admin', ['-c', conf, 'user', 'create', '--uid', 'keep-test', '--display-name', 'keep test', '--access-key', accessKeyId, '--secret', secretAccessKey], { timeout: 60_000 });
    return { endpoint, accessKeyId, secretAccessKey, dir, stop };
  } catch (e) {
    const tail = fs.readdirSync(logs).map((f) => `--- ${f}\n${fs.readFileSync(path.join(logs, f), 'utf8').slice(-1500)}`).join('\n');
    await stop();
    throw new Error(`${(e as Error).message}\n${tail}`);
  }
}
