/**
 * What protects the data, through the real `keep` binary on an embedded
 * repository: passphrases and key management, and detection of damaged or
 * truncated pack files by `keep check` and `keep restore`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { errorLine, fingerprint, flipByte, initRepo, keep, keepJson, MiB, PackBlob, packBlobs, packFiles, parseOneJson, prng, restoredPath, sha256, tempDirs } from './helpers.js';

/** LMDB's lock file holds reader slots, rewritten by any process that opens the index. */
const notLock = (rel: string) => rel.endsWith('-lock');

describe('passphrases', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let repo: string;
  let src: string;

  beforeAll(async () => {
    const base = tmp.make();
    ({ repo, env } = await initRepo(base, 'the right one'));
    src = path.join(base, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'f'), 'content\n');
    await keepJson(['backup', src], { env });
  });

  it('a wrong passphrase is a clear one-line error, a non-zero exit, and changes nothing', async () => {
    const before = fingerprint(repo, notLock);
    const target = path.join(path.dirname(repo), 'never-created');
    const wrong = { ...env, KEEP_PASSWORD: 'the wrong one' };
    fs.writeFileSync(path.join(src, 'g'), 'would be new\n');
    for (const args of [
      ['snapshots', '--json'],
      ['backup', src, '--json'],
      ['restore', 'latest', '--target', target, '--json'],
      ['ls', 'latest', '--json'],
      ['check', '--read-data', '--json'],
      ['key', 'add', '--json'],
      ['key', 'passwd', '--json'],
    ]) {
      const r = await keep(args, { env: { ...wrong, KEEP_NEW_PASSWORD: 'sneaky' } });
      const line = errorLine(r);
      expect(line, `keep ${args.join(' ')}`).toMatch(/passphrase/i);
      expect(r.stdout, `keep ${args.join(' ')}: no JSON for a failure`).toBe('');
    }
    expect(fs.existsSync(target)).toBe(false);
    expect(fingerprint(repo, notLock)).toEqual(before);
    const snaps = await keepJson(['snapshots'], { env });
    expect(snaps).toHaveLength(1);
    expect((await keepJson(['key', 'list'], { env })).length).toBe(1);
  });

  it('a missing passphrase says how to give one', async () => {
    const r = await keep(['snapshots'], { env: { KEEP_REPO: repo } });
    expect(errorLine(r)).toMatch(/KEEP_PASSWORD/);
    const f = path.join(path.dirname(repo), 'pass');
    fs.writeFileSync(f, 'the right one\n');
    const ok = await keep(['snapshots', '--json'], { env: { KEEP_REPO: repo, KEEP_PASSWORD_FILE: f } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(parseOneJson(ok)).toHaveLength(1);
  });
});

describe('keep key add | list | passwd | remove', () => {
  const tmp = tempDirs();
  let repo: string;
  let src: string;
  const as = (password: string, extra: Record<string, string> = {}) => ({ env: { KEEP_REPO: repo, KEEP_PASSWORD: password, ...extra } });

  beforeAll(async () => {
    const base = tmp.make();
    ({ repo } = await initRepo(base, 'first'));
    src = path.join(base, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'secret.txt'), 'only key holders read this\n');
    await keepJson(['backup', src], as('first'));
  });

  it('manages several passphrases for one master key', async () => {
    const l1 = await keepJson(['key', 'list'], as('first'));
    expect(l1).toHaveLength(1);
    expect(l1[0].current).toBe(true);
    const firstId = l1[0].id;
    expect(firstId).toMatch(/^[0-9a-f]{16}$/);

    // add: a second passphrase, from KEEP_NEW_PASSWORD
    const added = await keepJson(['key', 'add', '--kdf-cost', '12'], as('first', { KEEP_NEW_PASSWORD: 'second' }));
    const secondId = added.added;
    expect(secondId).toMatch(/^[0-9a-f]{16}$/);
    const l2 = await keepJson(['key', 'list'], as('first'));
    expect(l2.map((k: any) => k.id).sort()).toEqual([firstId, secondId].sort());
    expect(l2.find((k: any) => k.id === firstId).current).toBe(true);
    expect(l2.find((k: any) => k.id === secondId).current).toBe(false);
    expect(l2.find((k: any) => k.id === secondId).kdf).toContain('N=4096');

    // The new passphrase opens the repository and decrypts what the first one stored.
    const l2b = await keepJson(['key', 'list'], as('second'));
    expect(l2b.find((k: any) => k.id === secondId).current).toBe(true);
    const t = tmp.make('keep-key-');
    const r = await keep(['restore', 'latest', '--target', t], as('second'));
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(restoredPath(t, path.join(src, 'secret.txt')), 'utf8')).toBe('only key holders read this\n');

    // passwd: replaces the key you unlocked with
    const pw = await keepJson(['key', 'passwd', '--kdf-cost', '12'], as('second', { KEEP_NEW_PASSWORD: 'third' }));
    expect(pw.removed).toBe(secondId);
    const thirdId = pw.added;
    expect(errorLine(await keep(['snapshots'], as('second')))).toMatch(/passphrase/i);
    expect(await keepJson(['snapshots'], as('third'))).toHaveLength(1);
    expect(await keepJson(['snapshots'], as('first'))).toHaveLength(1);
    expect((await keepJson(['key', 'list'], as('third'))).map((k: any) => k.id).sort()).toEqual([firstId, thirdId].sort());

    // remove: another key goes; its passphrase stops working
    const rm = await keepJson(['key', 'remove', thirdId], as('first'));
    expect(rm.removed).toBe(thirdId);
    expect(errorLine(await keep(['snapshots'], as('third')))).toMatch(/passphrase/i);
    expect((await keepJson(['key', 'list'], as('first'))).map((k: any) => k.id)).toEqual([firstId]);

    // The key in use (here also the last one) is never removed.
    const refused = await keep(['key', 'remove', firstId, '--json'], as('first'));
    expect(errorLine(refused)).toMatch(/refus/i);
    expect(refused.stdout).toBe('');
    expect((await keepJson(['key', 'list'], as('first'))).map((k: any) => k.id)).toEqual([firstId]);
    expect(await keepJson(['snapshots'], as('first'))).toHaveLength(1);

    // An unknown id is an error, not a silent success.
    expect(errorLine(await keep(['key', 'remove', '0123456789abcdef'], as('first')))).toMatch(/0123456789abcdef/);
  });

  it('passwd without a new passphrase changes nothing', async () => {
    const before = fingerprint(path.join(repo, 'keys'));
    const r = await keep(['key', 'passwd'], as('first'));
    expect(errorLine(r)).toMatch(/KEEP_NEW_PASSWORD/);
    expect(fingerprint(path.join(repo, 'keys'))).toEqual(before);
  });
});

describe('damaged repositories', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let repo: string;
  let copy: string;
  let src: string;
  let snapshot: string;
  let victim: PackBlob;

  beforeAll(async () => {
    const base = tmp.make();
    ({ repo, env } = await initRepo(base));
    src = path.join(base, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'victim.bin'), prng(9, 3 * MiB));
    fs.writeFileSync(path.join(src, 'bystander.txt'), 'not in the damaged blob\n');
    snapshot = (await keepJson(['backup', src], { env })).snapshot;
    // An intact copy, for the truncation case.
    copy = path.join(base, 'repo-copy');
    fs.cpSync(repo, copy, { recursive: true });
  });

  it('an intact repository checks clean, reading all data', async () => {
    const r = await keep(['check', '--read-data', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const rep = parseOneJson(r);
    expect(rep.ok).toBe(true);
    expect(rep.errors).toEqual([]);
    expect(rep.blobs_read).toBeGreaterThan(3);
  });

  it('a flipped byte inside a data blob: check --read-data names the blob, restore fails clearly', async () => {
    const blobs = packFiles(repo).flatMap(packBlobs);
    const data = blobs.filter((x) => x.type === 0).sort((x, y) => y.length - x.length);
    expect(data.length).toBeGreaterThan(1);
    victim = data[0];
    flipByte(victim.pack, victim.offset + Math.floor(victim.length / 2));

    const r = await keep(['check', '--read-data', '--json'], { env });
    expect(r.code).not.toBe(0);
    const rep = parseOneJson(r);
    expect(rep.ok).toBe(false);
    expect(r.stdout).toContain(victim.id);
    expect(rep.damaged_blobs.map((d: any) => d.blob ?? d)).toContain(victim.id);
    expect(errorLine(r)).toMatch(/[0-9a-f]{64}/);

    const t = tmp.make('keep-damaged-');
    const rr = await keep(['restore', snapshot, '--target', t], { env });
    const line = errorLine(rr);
    expect(line).toMatch(/damaged|corrupt|authentic/i);
    expect(line).toContain(victim.id);

    // The damage is confined: what does not need that blob still restores.
    const t2 = tmp.make('keep-damaged-');
    const ok = await keep(['restore', snapshot, '--target', t2, '--include', path.join(src, 'bystander.txt')], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(fs.readFileSync(restoredPath(t2, path.join(src, 'bystander.txt')), 'utf8')).toBe('not in the damaged blob\n');
  });

  it('a truncated pack: check and restore both fail with a clear error', async () => {
    const cenv = { ...env, KEEP_REPO: copy };
    const packs = packFiles(copy);
    expect(packs.length).toBeGreaterThan(0);
    for (const p of packs) fs.truncateSync(p, Math.floor(fs.statSync(p).size / 2));

    const r = await keep(['check', '--json'], { env: cenv });
    expect(r.code).not.toBe(0);
    const rep = parseOneJson(r);
    expect(rep.ok).toBe(false);
    expect(rep.errors.join('\n')).toMatch(/truncated|trailer/i);
    expect(errorLine(r)).toMatch(/problem|damaged|truncated/i);

    const t = tmp.make('keep-trunc-');
    const rr = await keep(['restore', snapshot, '--target', t], { env: cenv });
    expect(errorLine(rr)).toMatch(/truncated/i);
    // Nothing claims a complete restore: the victim file is not there with its full content.
    const restored = restoredPath(t, path.join(src, 'victim.bin'));
    if (fs.existsSync(restored)) expect(sha256(fs.readFileSync(restored))).not.toBe(sha256(prng(9, 3 * MiB)));
  });
});
