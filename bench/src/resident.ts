import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { procSample } from './keepd.js';
import { keepBinary, ResidentRuns } from './tools.js';

/**
 * What a scheduled backup costs the resident agent (`keep agent run`): one files job on `data`,
 * every second, under the host's name as source (the CLI backups' default, so their latest
 * snapshot is the parent). The first run writes the service's own unchanged-directory cache and is
 * left out; the next `runs` are timed by the agent's log (duration_s of "run succeeded") and its
 * CPU read from /proc across them. No start-up, scrypt or key files per run: the agent holds the key.
 */
export async function residentRuns(o: { dir: string; repoUrl: string; token: string; password: string; data: string; runs: number }): Promise<ResidentRuns> {
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const file = (name: string, text: string) => {
    const f = path.join(o.dir, name);
    fs.writeFileSync(f, text, { mode: 0o600 });
    return f;
  };
  const config = file(
    'agent.yaml',
    [
      `repository: ${o.repoUrl}`,
      `token_file: ${file('token', o.token)}`,
      `password_file: ${file('password', o.password)}`,
      `state_dir: ${path.join(o.dir, 'state')}`,
      'jobs:',
      '  - name: bench',
      '    type: files',
      `    source: ${JSON.stringify(os.hostname())}`,
      `    paths: [${JSON.stringify(o.data)}]`,
      '    every: 1s',
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEP_')) env[k] = v;
  env.KEEP_CACHE_DIR = path.join(o.dir, 'cache');
  const child = spawn(keepBinary(), ['agent', 'run', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const done: number[] = [];
  let cpuAfterFirst: number | null = null;
  let stderr = '';
  let pending = '';
  const finished = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the resident agent ran ${done.length} of ${o.runs + 1} backups in 120 s: ${stderr.slice(-2000)}`)), 120_000);
    child.on('exit', (code) => reject(new Error(`keep agent run exited (${code}) after ${done.length} runs: ${stderr.slice(-2000)}`)));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout!.on('data', (b: Buffer) => {
      pending += b.toString();
      for (let nl; (nl = pending.indexOf('\n')) >= 0; pending = pending.slice(nl + 1)) {
        let line: { msg?: string; job?: string; duration_s?: number; error?: string };
        try {
          line = JSON.parse(pending.slice(0, nl));
        } catch {
          continue;
        }
        if (line.job !== 'bench') continue;
        if (line.msg === 'run failed') reject(new Error(`a resident run failed: ${line.error}`));
        if (line.msg !== 'run succeeded' || typeof line.duration_s !== 'number') continue;
        if (done.length === 0) cpuAfterFirst = procSample(child.pid!).cpu_s;
        done.push(line.duration_s);
        if (done.length === o.runs + 1) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  try {
    await finished;
    const end = procSample(child.pid!);
    return {
      durations_s: done.slice(1),
      cpu_s_per_run: end.cpu_s !== null && cpuAfterFirst !== null ? (end.cpu_s - cpuAfterFirst) / o.runs : null,
      peak_rss_kib: end.peak_rss_kib,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }
}
