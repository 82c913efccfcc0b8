#!/usr/bin/env node
// The main job, with no configuration: a keepd on loopback (its own data dir,
// private CA, admin and agent tokens), an agent that backs a generated tree up
// over gRPC, changes it, backs it up again and restores both snapshots, each
// proved byte-identical; then keepd stops (SIGTERM, exit 0) and a short run on
// an embedded repository follows. Everything lands in .keep-demo/ (or --dir).
// Exits non-zero if any step fails; keepd is stopped either way.
//   node scripts/demo.mjs [--small] [--dir DIR]     (--small: a 3 MiB tree, for the test)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { changeTree, describe, makeTree, proveSame, TREE_SIZES } from './demo/sample-tree.mjs';
import { cleanEnv, run, runJson, startKeepd } from './demo/processes.mjs';

const { values: opts } = parseArgs({ options: { small: { type: 'boolean' }, dir: { type: 'string' } } });
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEEP = path.join(root, 'node_modules', '.bin', 'keep');
const KEEPD = path.join(root, 'node_modules', '.bin', 'keepd');
const work = path.resolve(opts.dir ?? path.join(root, '.keep-demo'));
const size = opts.small ? TREE_SIZES.small : TREE_SIZES.full;
const at = (...p) => path.join(work, ...p);
const tree = at('sample');
const data = at('keepd-data');
const show = (p) => (p.startsWith(root + path.sep) ? path.relative(root, p) : p);
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
const short = (id) => id.slice(0, 8);
// No KEEP_* from the caller; the agent's caches stay inside the demo directory.
const base = cleanEnv({ KEEP_NO_PROGRESS: '1', KEEP_CACHE_DIR: at('cache') });

let stepCount = 0;
const say = (line) => console.log(`   ${line}`);
async function step(title, body) {
  console.log(`\n== ${++stepCount}. ${title}`);
  const started = performance.now();
  const took = () => ((performance.now() - started) / 1000).toFixed(2);
  try {
    const result = await body();
    say(`(${took()} s)`);
    return result;
  } catch (e) {
    say(`FAILED (${took()} s)`);
    throw e;
  }
}

/** A secret in a 0600 file, for KEEP_*_FILE: never on a command line or in the output. */
function secretFile(name, value) {
  fs.mkdirSync(at('secrets'), { recursive: true, mode: 0o700 });
  fs.writeFileSync(at('secrets', name), value, { mode: 0o600 });
  return at('secrets', name);
}

async function restoreAndProve(env, snapshot, expected, label) {
  const target = at(`restore-${label}-${short(snapshot)}`);
  const r = await runJson(KEEP, ['restore', snapshot, '--target', target], env);
  say(`restored ${short(snapshot)}: ${r.files} files, ${mb(r.bytes)} in ${r.duration_s.toFixed(2)} s`);
  say(proveSame(expected, path.join(target, tree), `snapshot ${short(snapshot)} (${label})`));
}

async function overGrpc() {
  const sources = {};
  await step(`generating a sample tree in ${show(tree)}`, async () => {
    makeTree(tree, size);
    sources.v1 = describe(tree);
    say(`${sources.v1.size} entries: ${size.notes} notes, a ${size.randomBytes >> 20} MiB random file, a ${size.logBytes >> 20} MiB log with a symlink and a hardlink to it`);
  });

  await step(`keepd init: a repository server's data directory in ${show(data)}`, async () => {
    const r = await runJson(KEEPD, ['init', '--data', data], base);
    say(`repository ${r.repository}; keepd holds ciphertext only, the key will come from the first agent`);
  });

  const tls = await step('keepd tls init: a private CA and a server certificate for localhost', async () => {
    const r = await runJson(KEEPD, ['tls', 'init', '--data', data], base);
    say(`CA ${show(path.resolve(r.ca))} (the agents' KEEP_CA), certificate ${show(path.resolve(r.cert))}`);
    return r;
  });

  const tokens = await step('keepd token create: an agent token for source "demo", an admin token', async () => {
    const agent = await runJson(KEEPD, ['token', 'create', '--data', data, '--role', 'agent', '--source', 'demo'], base);
    const admin = await runJson(KEEPD, ['token', 'create', '--data', data, '--role', 'admin'], base);
    say(`agent token ${agent.id} (backs up and restores "demo", cannot delete), admin token ${admin.id}`);
    say(`secrets in ${show(at('secrets'))}/ (mode 0600), handed to keep as KEEP_TOKEN_FILE / KEEP_PASSWORD_FILE`);
    return { agent: secretFile('agent.token', agent.token), admin: secretFile('admin.token', admin.token) };
  });
  const password = secretFile('passphrase', 'demo passphrase');

  const keepd = await step('keepd serve on a free loopback port, TLS', async () => {
    const k = await startKeepd(KEEPD, ['--data', data, '--listen', '127.0.0.1:0', '--tls-cert', path.resolve(tls.cert), '--tls-key', path.resolve(tls.key)], base, at('keepd.log'));
    say(`listening on grpcs://localhost:${k.port} (log: ${show(at('keepd.log'))})`);
    return k;
  });
  const url = `grpcs://localhost:${keepd.port}`;
  const agent = { ...base, KEEP_REPO: url, KEEP_CA: path.resolve(tls.ca), KEEP_TOKEN_FILE: tokens.agent, KEEP_PASSWORD_FILE: password };
  const admin = { ...agent, KEEP_TOKEN_FILE: tokens.admin };

  let failure;
  try {
    await step(`keep init over gRPC (agent token): the agent creates the key, keepd stores it wrapped`, async () => {
      const r = await runJson(KEEP, ['init'], agent);
      say(`repository ${r.repository} at ${url}, chunks ${r.chunker.min}..${r.chunker.max} bytes (avg ${r.chunker.avg})`);
    });

    const b1 = await step('keep backup over gRPC (first)', async () => {
      const b = await runJson(KEEP, ['backup', tree, '--source', 'demo', '--tag', 'first'], agent);
      say(`snapshot ${short(b.snapshot)}: ${b.files_new} new files, read ${mb(b.bytes_read)}, sent ${mb(b.bytes_sent)} in ${b.chunks_new} chunks`);
      return b;
    });

    await step('changing the tree', async () => {
      say(changeTree(tree, size));
      sources.v2 = describe(tree);
    });

    const b2 = await step('keep backup over gRPC (second)', async () => {
      const b = await runJson(KEEP, ['backup', tree, '--source', 'demo', '--tag', 'second'], agent);
      say(`snapshot ${short(b.snapshot)}: ${b.files_new} new, ${b.files_changed} changed, ${b.files_unmodified} unmodified files; read ${mb(b.bytes_read)}, sent ${mb(b.bytes_sent)} in ${b.chunks_new} new chunks`);
      return b;
    });

    await step('keep snapshots', async () => {
      for (const s of await runJson(KEEP, ['snapshots'], agent)) say(`${short(s.id)}  ${s.time}  ${s.source}  ${mb(s.size)}  [${s.tags.join(',')}]`);
    });

    await step('keepd status (beside the running keepd, no key)', async () => {
      const st = await runJson(KEEPD, ['status', '--data', data], base);
      say(`${st.snapshots} snapshots, ${st.blobs} blobs in ${st.packs} packs`);
      for (const s of st.sources) say(`source ${s.source}: ${s.snapshots} snapshots, newest ${short(s.last_snapshot)}, ${s.age_s} s old`);
    });

    await step('keep stats over gRPC (admin token: repository-wide sizes)', async () => {
      const st = await runJson(KEEP, ['stats'], admin);
      say(`${st.snapshots} snapshots hold ${mb(st.total_file_size)} of files in ${mb(st.stored_bytes)} of packs (${st.space_saving_ratio.toFixed(2)}x)`);
    });

    await step('keep restore over gRPC, both snapshots, each proved against the tree it backed up', async () => {
      await restoreAndProve(agent, b1.snapshot, sources.v1, 'grpc');
      await restoreAndProve(agent, b2.snapshot, sources.v2, 'grpc');
    });

    await step('keep check --read-data over gRPC (admin token): every blob read back and decrypted', async () => {
      const c = await runJson(KEEP, ['check', '--read-data'], admin);
      if (!c.ok) throw new Error(`keep check found damage: ${JSON.stringify(c)}`);
      say(`ok: ${c.snapshots} snapshots, ${c.blobs} blobs, read ${mb(c.bytes_read)}`);
    });
  } catch (e) {
    failure = e;
  } finally {
    await step('stopping keepd (SIGTERM)', async () => {
      const x = await keepd.stop();
      if (x.code === 0 && !x.forced) return say('keepd drained its connections and exited 0');
      const stopError = new Error(`keepd did not stop cleanly: exit ${x.code ?? x.signal}${x.forced ? ` (killed: still running 15 s after SIGTERM)` : ''}`);
      if (!failure) throw stopError;
      say(stopError.message);
    });
  }
  if (failure) throw failure;
  return sources;
}

async function embedded(sources) {
  const env = { ...base, KEEP_REPO: at('embedded-repo'), KEEP_PASSWORD_FILE: at('secrets', 'passphrase') };
  await step(`embedded repository in ${show(at('embedded-repo'))}: keep init, backup, restore (no keepd)`, async () => {
    await runJson(KEEP, ['init'], env);
    const b = await runJson(KEEP, ['backup', tree, '--source', 'demo'], env);
    say(`snapshot ${short(b.snapshot)}: ${b.files_new} files, stored ${mb(b.bytes_sent)} in ${b.chunks_new} chunks`);
    await restoreAndProve(env, b.snapshot, sources.v2, 'embedded');
  });
}

async function main() {
  const started = performance.now();
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  await embedded(await overGrpc());
  console.log(`\n== done: ${stepCount} steps in ${((performance.now() - started) / 1000).toFixed(1)} s; everything is in ${show(work)}/`);
}

main().catch((e) => {
  console.error(`\ndemo FAILED: ${e.message}`);
  process.exitCode = 1;
});
