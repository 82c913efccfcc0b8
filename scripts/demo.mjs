#!/usr/bin/env node
// The main job: an end-to-end backup and restore on an embedded repository,
// no configuration. Creates .keep-demo/ (repository, sample tree, restores),
// backs up, changes the tree, backs up again, lists snapshots, restores both
// snapshots and proves each restore byte-identical to what was backed up.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const keepBin = path.join(root, 'node_modules', '.bin', 'keep');
const work = path.join(root, '.keep-demo');
const repo = path.join(work, 'repo');
const tree = path.join(work, 'sample');
const env = { ...process.env, KEEP_REPO: repo, KEEP_PASSWORD: 'demo passphrase', KEEP_NO_PROGRESS: '1' };

const say = (m) => console.log(`\n== ${m}`);
const keep = (...args) => JSON.parse(execFileSync(keepBin, [...args, '--json'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

/** Deterministic pseudo-random bytes (so the demo is the same every run). */
function bytes(seed, n) {
  const out = Buffer.alloc(n);
  let block = 0;
  for (let o = 0; o < n; o += 32) crypto.createHash('sha256').update(`${seed}:${block++}`).digest().copy(out, o);
  return out;
}
function text(seed, n) {
  const words = ['backup', 'restore', 'chunk', 'snapshot', 'keep', 'tree', 'pack', 'index', 'blob', 'key'];
  const r = bytes(seed, Math.ceil(n / 6));
  let s = '';
  for (let i = 0; s.length < n; i++) s += words[r[i % r.length] % words.length] + (i % 12 === 11 ? '\n' : ' ');
  return s.slice(0, n);
}

function makeTree() {
  fs.mkdirSync(path.join(tree, 'docs', 'notes'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'data'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'empty-dir'), { recursive: true });
  for (let i = 0; i < 500; i++) fs.writeFileSync(path.join(tree, 'docs', 'notes', `note-${i}.txt`), text(`note${i}`, 200 + (i * 37) % 4000));
  fs.writeFileSync(path.join(tree, 'data', 'random.bin'), bytes('random', 24 << 20));
  fs.writeFileSync(path.join(tree, 'data', 'log.txt'), text('log', 16 << 20));
  fs.writeFileSync(path.join(tree, 'empty-file'), '');
  fs.symlinkSync('data/log.txt', path.join(tree, 'latest-log'));
  fs.linkSync(path.join(tree, 'data', 'log.txt'), path.join(tree, 'docs', 'log-hardlink.txt'));
  fs.chmodSync(path.join(tree, 'docs', 'notes', 'note-1.txt'), 0o600);
}

function changeTree() {
  const f = path.join(tree, 'data', 'random.bin');
  const fd = fs.openSync(f, 'r+');
  fs.writeSync(fd, Buffer.from('CHANGED'), 0, 7, 12 << 20); // seven bytes in the middle of a 24 MiB file
  fs.closeSync(fd);
  fs.writeFileSync(path.join(tree, 'docs', 'new-file.txt'), text('new', 10000));
  fs.rmSync(path.join(tree, 'docs', 'notes', 'note-7.txt'));
}

/** path -> description of everything a restore must reproduce */
function describe(dir) {
  const out = new Map();
  const walk = (d, rel) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const r = `${rel}/${name}`;
      const st = fs.lstatSync(p);
      const meta = `${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs)}`;
      if (st.isSymbolicLink()) out.set(r, `link ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) out.set(r, `dir ${meta}`), walk(p, r);
      else out.set(r, `file ${meta} ${st.nlink} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`);
    }
  };
  walk(dir, '');
  return out;
}

function same(expected, restoredDir, label) {
  const got = describe(restoredDir);
  const problems = [];
  for (const [k, v] of expected) if (got.get(k) !== v) problems.push(`${k}: expected ${v}, got ${got.get(k)}`);
  for (const k of got.keys()) if (!expected.has(k)) problems.push(`${k}: not in the original`);
  if (problems.length) throw new Error(`${label} differs from the original:\n  ${problems.slice(0, 10).join('\n  ')}`);
  console.log(`${label}: ${expected.size} entries, byte-identical (content, modes, mtimes, symlinks, hardlinks)`);
}

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

say(`generating a sample tree in ${path.relative(root, tree)}`);
makeTree();
const v1 = describe(tree);

say(`keep init (embedded repository in ${path.relative(root, repo)})`);
const init = keep('init');
console.log(`repository ${init.repository}, chunks ${init.chunker.min}..${init.chunker.max} bytes (avg ${init.chunker.avg})`);

say('keep backup (first)');
const b1 = keep('backup', tree, '--source', 'demo', '--tag', 'first');
console.log(`snapshot ${b1.snapshot.slice(0, 8)}: ${b1.files_new} new files, read ${mb(b1.bytes_read)}, stored ${mb(b1.bytes_sent)} in ${b1.chunks_new} chunks, ${b1.duration_s.toFixed(2)} s`);

say('changing the tree: 7 bytes inside a 24 MiB file, one file added, one removed');
changeTree();
const v2 = describe(tree);

say('keep backup (second)');
const b2 = keep('backup', tree, '--source', 'demo', '--tag', 'second');
console.log(`snapshot ${b2.snapshot.slice(0, 8)}: ${b2.files_new} new, ${b2.files_changed} changed, ${b2.files_unmodified} unmodified files; read ${mb(b2.bytes_read)}, stored ${mb(b2.bytes_sent)} in ${b2.chunks_new} new chunks`);

say('keep snapshots');
for (const s of keep('snapshots')) console.log(`${s.id.slice(0, 8)}  ${s.time}  ${s.source}  ${mb(s.size)}  [${s.tags.join(',')}]`);

say('keep stats');
const st = keep('stats');
console.log(`${st.snapshots} snapshots hold ${mb(st.total_file_size)} of files in ${mb(st.stored_bytes)} of packs (${st.space_saving_ratio.toFixed(2)}x)`);

say('keep restore, both snapshots');
for (const [b, expected] of [[b1, v1], [b2, v2]]) {
  const target = path.join(work, `restore-${b.snapshot.slice(0, 8)}`);
  const r = keep('restore', b.snapshot, '--target', target);
  console.log(`restored ${b.snapshot.slice(0, 8)}: ${r.files} files, ${mb(r.bytes)} in ${r.duration_s.toFixed(2)} s`);
  same(expected, path.join(target, tree), `snapshot ${b.snapshot.slice(0, 8)}`);
}

say('keep check --read-data');
const c = keep('check', '--read-data');
console.log(`${c.ok ? 'ok' : 'DAMAGED'}: ${c.snapshots} snapshots, ${c.blobs} blobs, read ${mb(c.bytes_read)}`);

say(`done: everything is in ${path.relative(root, work)}/`);
