/**
 * What a stranger without a token can make keepd spend (issue 13, item 8),
 * against a real keepd: its open-file limit is raised at start; a flood of
 * idle TCP connections (more than its soft limit was) does not keep a real
 * agent out, and the flood's connections are closed when they make no
 * authenticated call; messages sent without a token are refused from their
 * headers, so keepd never buffers them (its peak RSS stays bounded).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { H2_CONNECTION_WINDOW_BYTES, H2_STREAM_WINDOW_BYTES } from '@keep/server/dist/limits.js';
import { generateTree, MiB, tempDirs } from './helpers.js';
import { agentEnv, createToken, keepdInit, killAllKeepd, RawClient, runKeep, startKeepd, waitFor, wire } from './keepd-harness.js';

/** Opens `count` idle TCP connections to `port` and reports on stdout "connected N failed M" once every attempt has done one or the other. */
const FLOODER = `
const net = require('node:net');
const [port, count] = process.argv.slice(1).map(Number);
let connected = 0, failed = 0;
const report = () => connected + failed === count && console.log('connected ' + connected + ' failed ' + failed);
for (let i = 0; i < count; i++) {
  const s = net.connect(port, '127.0.0.1');
  let up = false;
  s.on('connect', () => { up = true; connected++; report(); });
  s.on('error', () => undefined);
  s.on('close', () => { if (!up) { failed++; report(); } });
}
setTimeout(() => process.exit(0), 120000).unref();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/**
 * Start the flooder: `connected()` is -1 until every attempt has connected or failed.
 * Whether keepd closed them is read on keepd's side (serverConnections): a
 * client that never reads can miss a reset that lands before it starts to.
 */
function flood(port: number, count: number) {
  const child = spawn('/bin/sh', ['-c', 'ulimit -n 4096 && exec "$0" "$@"', process.execPath, '-e', FLOODER, String(port), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let connected = -1;
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    const c = /^connected (\d+)/.exec(l);
    if (c) connected = Number(c[1]);
  });
  return {
    connected: () => connected,
    stop() {
      child.stdin!.end();
      child.kill();
    },
  };
}

/** TCP connections the kernel holds open on keepd's side of 127.0.0.1:`port` (/proc/net/tcp: state 01 is ESTABLISHED). */
function serverConnections(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === local && f[3] === '01';
    }).length;
}

/** keepd's keep_connections_dropped_total{reason} from its /metrics. */
async function dropped(metricsPort: number, reason: 'cap' | 'preauth'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = new RegExp(`^keep_connections_dropped_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

function limits(pid: number): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))!;
  return { soft: Number(m[1]), hard: Number(m[2]) };
}

function memory(pid: number): { hwm: number; rss: number } {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)![1]) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

describe('pre-authentication limits', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('keepd raises its open-file limit, and a real backup gets through 1,100 idle connections, which are closed for want of a token', async () => {
    const dir = tmp.make('keep-flood-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['flooded'] });
    // Started at a soft limit of 1,024 open files, as many systems start services.
    const keepd = await startKeepd(data, { softOpenFiles: 1024, metrics: true });
    const lim = limits(keepd.child.pid!);
    if (lim.hard > 1024) expect(lim.soft, 'keepd should raise its soft open-file limit to the hard one').toBe(lim.hard);
    const env = agentEnv(keepd, agent.token);
    expect((await runKeep(['init', '--kdf-cost', '12'], env)).code).toBe(0);
    const src = path.join(dir, 'src');
    generateTree(src, { largeFiles: [3 * MiB], smallFiles: 40 });

    // The flood: 1,100 idle TCP connections from a process whose own limit allows them,
    // arriving while keepd is too busy to accept (paused: a loaded host, deterministically).
    // The kernel completes their handshakes; with too short a listen backlog it silently
    // forgets those that overflow it, and they stay open on the flooder's side forever.
    process.kill(keepd.child.pid!, 'SIGSTOP');
    const flooder = flood(keepd.port, 1100);
    try {
      await waitFor(() => flooder.connected() >= 0, 60_000);
      process.kill(keepd.child.pid!, 'SIGCONT');
      expect(flooder.connected()).toBe(1100);

      const backup = await runKeep(['backup', '--source', 'flooded', src], env);
      expect(backup.code, backup.stderr).toBe(0);
      expect(keepd.exited()).toBeUndefined();

      // None of the flood's connections made an authenticated call: keepd closes every one (pre-auth timeout).
      await waitFor(async () => (await dropped(keepd.metricsPort!, 'preauth')) === 1100, 90_000, 100);
      expect(serverConnections(keepd.port)).toBe(0);
    } finally {
      flooder.stop();
    }
    // The agent still works after the flood.
    const snaps = await runKeep(['snapshots', '--json'], env);
    expect(snaps.code, snaps.stderr).toBe(0);
    expect(JSON.parse(snaps.stdout)).toHaveLength(1);
    await keepd.stop();
  }, 300_000);

  it('at the connection cap, connections that never authenticated make room: an agent gets through a flood ten times the cap', async () => {
    const dir = tmp.make('keep-flood-cap-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['capped'] });
    const keepd = await startKeepd(data, { args: ['--max-connections', '50'], metrics: true });
    expect(keepd.listening.max_connections).toBe(50);
    const env = agentEnv(keepd, agent.token);
    const src = path.join(dir, 'src');
    generateTree(src, { smallFiles: 20 });
    const flooder = flood(keepd.port, 500);
    try {
      await waitFor(() => flooder.connected() >= 0, 60_000);
      // keepd holds at most 50: the others were closed as newer ones came.
      // (A connection closed before the flooder saw it connect counts as failed there.)
      await waitFor(async () => (await dropped(keepd.metricsPort!, 'cap')) >= 450, 60_000, 100);
      expect(serverConnections(keepd.port)).toBeLessThanOrEqual(50);
      expect((await runKeep(['init', '--kdf-cost', '12'], env)).code).toBe(0);
      const backup = await runKeep(['backup', '--source', 'capped', src], env);
      expect(backup.code, backup.stderr).toBe(0);
    } finally {
      flooder.stop();
    }
    await keepd.stop();
  }, 300_000);

  it('messages sent without a token are refused from the headers: keepd does not buffer them', async () => {
    const dir = tmp.make('keep-preauth-mem-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const keepd = await startKeepd(data);
    const { grpc } = await wire();
    // A valid GetConfigRequest padded with an unknown field to 120 MiB, under the message limit.
    const pad = 120 * MiB;
    const len: number[] = [];
    for (let v = pad; ; v = Math.floor(v / 128)) {
      if (v < 0x80) {
        len.push(v);
        break;
      }
      len.push((v & 0x7f) | 0x80);
    }
    const big = Buffer.concat([Buffer.from([0x08, 0x01, 0x7a]), Buffer.from(len), Buffer.alloc(pad, 0x61)]);
    const before = memory(keepd.child.pid!);
    for (let round = 0; round < 2; round++) {
      const clients = Array.from({ length: 3 }, () => new RawClient(grpc, `127.0.0.1:${keepd.port}`));
      try {
        const results = await Promise.all(clients.map((c) => c.unary('GetConfig', big)));
        for (const r of results) expect(r).toMatchObject({ ok: false, code: grpc.status.UNAUTHENTICATED });
      } finally {
        for (const c of clients) c.close();
      }
    }
    const after = memory(keepd.child.pid!);
    expect(keepd.exited()).toBeUndefined();
    // Six 120 MiB messages went to keepd; its peak resident memory stayed far below one of them per call.
    expect(after.hwm, `keepd VmHWM ${before.hwm} -> ${after.hwm} bytes`).toBeLessThan(400 * 1000 * 1000);
    expect(after.hwm - before.hwm).toBeLessThan(150 * MiB);
    await keepd.stop();
  }, 300_000);

  it('a connection may have 64 KiB in flight until one of its calls authenticates, then a wide window (an upload is not held to 64 KiB)', async () => {
    const dir = tmp.make('keep-windows-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['windows'] });
    const keepd = await startKeepd(data);
    const session = http2.connect(`http://127.0.0.1:${keepd.port}`);
    try {
      await new Promise((resolve) => session.once('remoteSettings', resolve));
      expect(session.remoteSettings.initialWindowSize).toBe(H2_STREAM_WINDOW_BYTES);
      expect(session.state.remoteWindowSize, 'a stranger\'s connection').toBe(65_535);
      const call = async (token?: string) => {
        const req = session.request({ ':method': 'POST', ':path': '/keep.v1.RepositoryService/GetConfig', 'content-type': 'application/grpc', te: 'trailers', ...(token ? { authorization: `Bearer ${token}` } : {}) });
        req.end(Buffer.alloc(5)); // one empty message
        const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
        const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve));
        req.resume();
        return (headers['grpc-status'] ?? (await trailers)['grpc-status']) as string;
      };
      expect(await call()).toBe('16'); // UNAUTHENTICATED
      await new Promise((r) => setTimeout(r, 200));
      expect(session.state.remoteWindowSize, 'after a refused call').toBeLessThanOrEqual(65_535);
      expect(await call(agent.token)).toBe('0');
      await waitFor(() => (session.state.remoteWindowSize ?? 0) >= H2_CONNECTION_WINDOW_BYTES - 1024, 10_000);
    } finally {
      session.close();
      await keepd.stop();
    }
  }, 120_000);
});
