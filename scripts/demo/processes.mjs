// The demo's child processes: one-shot keep/keepd commands, and a keepd serve
// that logs to a file (a pipe nobody drains while a command runs could fill and
// stall it) and is always stopped: SIGTERM, then SIGKILL if it does not exit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The parent's environment without KEEP_* (the demo needs no configuration and takes none by accident), plus `extra`. */
export function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEP_')) env[k] = v;
  return { ...env, ...extra };
}

/** One-shot commands still running (an interrupted demo ends them so they hold no keepd session). */
const commands = new Set();

/** Run `bin ...args` with `env`; resolves with stdout, rejects with the exit code and stderr. Secrets go in env or files, never in args. */
export function run(bin, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    commands.add(child);
    child.on('close', () => commands.delete(child));
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out).toString());
      reject(new Error(`${path.basename(bin)} ${args.join(' ')} exited ${code ?? signal}: ${Buffer.concat(err).toString().trim()}`));
    });
  });
}

/** `run` with --json, parsed. */
export async function runJson(bin, args, env) {
  return JSON.parse(await run(bin, [...args, '--json'], env));
}

const STOP_GRACE_MS = 15_000;

/**
 * `keepd serve ...args` with its log in `logFile`; resolves once keepd logs
 * "listening" (with the port it bound), rejects if it exits or stays silent.
 */
export async function startKeepd(bin, args, env, logFile) {
  const fd = fs.openSync(logFile, 'w');
  const child = spawn(bin, ['serve', ...args], { env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let exit;
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve((exit = { code, signal }))));
  child.on('error', (e) => (exit = { code: null, signal: null, error: e }));
  // Whatever ends the demo, keepd does not outlive it: an interrupted demo
  // ends its commands and stops keepd before it exits (130).
  const killOnExit = () => exit || child.kill('SIGKILL');
  const onSignal = async (signal) => {
    for (const c of commands) c.kill('SIGTERM');
    const x = await stop();
    console.error(`\ndemo interrupted (${signal}): its commands ended, keepd stopped (exit ${x.code ?? x.signal})`);
    process.exit(130);
  };
  process.once('exit', killOnExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  // One SIGTERM however many callers (the signal handler and the demo's finally may both stop it).
  let stopping;
  const stop = () => (stopping ??= stopOnce());
  const stopOnce = async () => {
    if (!exit) child.kill('SIGTERM');
    const forced = await Promise.race([exited.then(() => false), sleep(STOP_GRACE_MS, true, { ref: false })]);
    if (forced) child.kill('SIGKILL');
    const x = await exited;
    process.removeListener('exit', killOnExit);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    return { ...x, forced };
  };

  const until = Date.now() + 20_000;
  for (;;) {
    const listening = fs
      .readFileSync(logFile, 'utf8')
      .split('\n')
      .map((l) => { try { return JSON.parse(l); } catch { return undefined; } })
      .find((r) => r?.msg === 'listening');
    if (listening) return { port: listening.port, tls: listening.tls === true, stop };
    if (exit || Date.now() > until) {
      await stop();
      throw new Error(`keepd ${exit ? `exited (${exit.error?.message ?? exit.code ?? exit.signal})` : 'did not listen within 20 s'}; its log:\n${fs.readFileSync(logFile, 'utf8')}`);
    }
    await sleep(50);
  }
}
