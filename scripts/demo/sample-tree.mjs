// The demo's sample tree: generated deterministically (the same bytes every
// run), changed the same way, and described entry by entry so a restore can be
// proved byte-identical: content, modes, mtimes, symlinks and hardlinks.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Sizes of the full tree (README's demo) and of the small one (the test). */
export const TREE_SIZES = {
  full: { notes: 500, randomBytes: 24 << 20, logBytes: 16 << 20 },
  small: { notes: 40, randomBytes: 2 << 20, logBytes: 1 << 20 },
};

/** Deterministic pseudo-random bytes. */
function bytes(seed, n) {
  const out = Buffer.alloc(n);
  let block = 0;
  for (let o = 0; o < n; o += 32) crypto.createHash('sha256').update(`${seed}:${block++}`).digest().copy(out, o);
  return out;
}

/** Deterministic text that compresses like prose. */
function text(seed, n) {
  const words = ['backup', 'restore', 'chunk', 'snapshot', 'keep', 'tree', 'pack', 'index', 'blob', 'key'];
  const r = bytes(seed, Math.ceil(n / 6));
  let s = '';
  for (let i = 0; s.length < n; i++) s += words[r[i % r.length] % words.length] + (i % 12 === 11 ? '\n' : ' ');
  return s.slice(0, n);
}

export function makeTree(tree, size) {
  fs.mkdirSync(path.join(tree, 'docs', 'notes'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'data'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'empty-dir'), { recursive: true });
  for (let i = 0; i < size.notes; i++) fs.writeFileSync(path.join(tree, 'docs', 'notes', `note-${i}.txt`), text(`note${i}`, 200 + (i * 37) % 4000));
  fs.writeFileSync(path.join(tree, 'data', 'random.bin'), bytes('random', size.randomBytes));
  fs.writeFileSync(path.join(tree, 'data', 'log.txt'), text('log', size.logBytes));
  fs.writeFileSync(path.join(tree, 'empty-file'), '');
  fs.symlinkSync('data/log.txt', path.join(tree, 'latest-log'));
  fs.linkSync(path.join(tree, 'data', 'log.txt'), path.join(tree, 'docs', 'log-hardlink.txt'));
  fs.chmodSync(path.join(tree, 'docs', 'notes', 'note-1.txt'), 0o600);
}

/** Seven bytes in the middle of the random file, one file added, one removed; returns what changed, in words. */
export function changeTree(tree, size) {
  const fd = fs.openSync(path.join(tree, 'data', 'random.bin'), 'r+');
  fs.writeSync(fd, Buffer.from('CHANGED'), 0, 7, size.randomBytes >> 1);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(tree, 'docs', 'new-file.txt'), text('new', 10000));
  fs.rmSync(path.join(tree, 'docs', 'notes', 'note-7.txt'));
  return `7 bytes inside a ${size.randomBytes >> 20} MiB file, one file added, one removed`;
}

/** path -> description of everything a restore must reproduce */
export function describe(dir) {
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

/** Throws, naming the differences, unless `restoredDir` matches `expected` entry for entry. */
export function proveSame(expected, restoredDir, label) {
  const got = describe(restoredDir);
  const problems = [];
  for (const [k, v] of expected) if (got.get(k) !== v) problems.push(`${k}: expected ${v}, got ${got.get(k)}`);
  for (const k of got.keys()) if (!expected.has(k)) problems.push(`${k}: not in the original`);
  if (problems.length) throw new Error(`${label} differs from the original:\n  ${problems.slice(0, 10).join('\n  ')}`);
  return `${label}: ${expected.size} entries, byte-identical (content, modes, mtimes, symlinks, hardlinks)`;
}
