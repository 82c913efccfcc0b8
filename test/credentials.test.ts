/**
 * Credentials as a restic user gives them (issue 15): -r/--repo,
 * --password-file, --password-command, a prompt on a terminal, --token-file
 * and --env-file, before or after the command name; flag > environment
 * (--env-file fills only what the environment lacks) > prompt. Real embedded
 * repositories, one real keepd over gRPC, a real pseudo-terminal (util-linux
 * `script`) for the prompt; and no passphrase or token ever on stderr.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keep, KEEP_BIN, RunOptions, RunResult, summaryLine, tempDirs } from './helpers.js';
import { createToken, keepdInit, killAllKeepd, startKeepd, tokenSecret } from './keepd-harness.js';

const PASS = 'credentials test passphrase';
const NEW_PASS = 'a second passphrase for key add';
const WRONG = 'not the passphrase at all';
const hasScript = spawnSync('script', ['--version']).status === 0;

/** Every stderr this file saw: the last test greps it for secrets. */
const stderrs: string[] = [];
async function run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await keep(args, { ...opts, env: { KEEP_NO_PROGRESS: '1', ...opts.env } });
  stderrs.push(r.stderr);
  return r;
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * `keep ARGS` on a pseudo-terminal: each answer is typed once the next
 * passphrase question shows (typed earlier, the terminal would still echo it).
 * Returns everything the terminal showed (stdout and stderr) and the exit code.
 */
function onTerminal(args: string[], answers: string[], env: Record<string, string>): Promise<{ code: number | null; screen: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_')) clean[k] = v;
  const child = spawn('script', ['-qec', [KEEP_BIN, ...args].map(sq).join(' '), '/dev/null'], { env: { ...clean, KEEP_NO_PROGRESS: '1', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  let typed = 0;
  const onOutput = (b: Buffer) => {
    screen += b.toString();
    const asked = (screen.match(/passphrase[^:\n]*: /g) ?? []).length;
    while (typed < asked && typed < answers.length) child.stdin.write(`${answers[typed++]}\r`);
  };
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      stderrs.push(screen);
      resolve({ code, screen });
    }),
  );
}

describe('credentials on an embedded repository', () => {
  const tmp = tempDirs();
  let dir: string;
  let repo: string;
  let passFile: string;
  let wrongFile: string;
  let empty: string;
  let snapshot: string;

  beforeAll(async () => {
    dir = tmp.make('keep-credentials-');
    repo = path.join(dir, 'repo');
    passFile = path.join(dir, 'pass');
    wrongFile = path.join(dir, 'wrong');
    fs.writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 });
    fs.writeFileSync(wrongFile, `${WRONG}\n`, { mode: 0o600 });
    empty = path.join(dir, 'not-a-repo');
    fs.mkdirSync(empty);
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'credentials\n'.repeat(100));
    // Global flags before the command name.
    const init = await run(['-r', repo, '--password-file', passFile, 'init', '--kdf-cost', '12', '--json']);
    expect(init.code, init.stderr).toBe(0);
    // ... and after it.
    const backup = await run(['backup', src, '--repo', repo, `--password-file=${passFile}`, '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    snapshot = summaryLine(backup).snapshot;
  });

  const ids = (r: RunResult) => (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id);

  it('--password-file beats KEEP_PASSWORD; a wrong one exits 12', async () => {
    const r = await run(['snapshots', '--json', '-r', repo, '--password-file', passFile], { env: { KEEP_PASSWORD: WRONG } });
    expect(r.code, r.stderr).toBe(0);
    expect(ids(r)).toEqual([snapshot]);
    expect(r.stderr).toBe('');
    const wrong = await run(['snapshots', '-r', repo, '--password-file', wrongFile], { env: { KEEP_PASSWORD: PASS } });
    expect(wrong.code).toBe(12);
    expect(wrong.stderr).toMatch(/^keep: error: wrong passphrase/);
  });

  it('KEEP_PASSWORD_FILE works alone, and a world-readable one is warned about (not refused)', async () => {
    const open = path.join(dir, 'pass-0644');
    fs.writeFileSync(open, PASS, { mode: 0o644 });
    fs.chmodSync(open, 0o644);
    const r = await run(['snapshots', '--json'], { env: { KEEP_REPO: repo, KEEP_PASSWORD_FILE: open } });
    expect(r.code, r.stderr).toBe(0);
    expect(ids(r)).toEqual([snapshot]);
    expect(r.stderr).toMatch(/^keep: warning: KEEP_PASSWORD_FILE .*pass-0644 is readable by every user \(mode 644\)/);
  });

  it('--password-command: its first line is the passphrase; it beats the environment', async () => {
    const cmd = `printf '%s\\nsecond line\\n' ${sq(PASS)}`;
    const r = await run(['-r', repo, 'snapshots', '--password-command', cmd, '--json'], { env: { KEEP_PASSWORD_FILE: wrongFile } });
    expect(r.code, r.stderr).toBe(0);
    expect(ids(r)).toEqual([snapshot]);
    // From the environment too, run by /bin/sh (a pipe works).
    const env = await run(['snapshots', '--json'], { env: { KEEP_REPO: repo, KEEP_PASSWORD_COMMAND: `cat ${sq(passFile)} | head -n 1` } });
    expect(env.code, env.stderr).toBe(0);
    expect(ids(env)).toEqual([snapshot]);
    // A wrong passphrase from a command is still 12.
    const wrong = await run(['snapshots', '-r', repo, '--password-command', `cat ${sq(wrongFile)}`]);
    expect(wrong.code).toBe(12);
  });

  it('a failing --password-command exits 1 with a clear message that shows neither its output nor the command', async () => {
    const r = await run(['snapshots', '-r', repo, '--password-command', `echo ${sq(PASS)}; exit 7`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('keep: error: the password command (--password-command / KEEP_PASSWORD_COMMAND) exited with status 7; no passphrase');
    const silent = await run(['snapshots', '-r', repo, '--password-command', 'true']);
    expect(silent.code).toBe(1);
    expect(silent.stderr).toMatch(/printed no passphrase/);
    const both = await run(['snapshots', '-r', repo, '--password-command', 'true', '--password-file', passFile]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/mutually exclusive/);
  });

  it('-r beats KEEP_REPO', async () => {
    const env = { KEEP_REPO: empty, KEEP_PASSWORD: PASS };
    const r = await run(['snapshots', '--json', '-r', repo], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(ids(r)).toEqual([snapshot]);
    expect((await run(['snapshots', `-r${repo}`, '--json'], { env })).code).toBe(0);
    const without = await run(['snapshots'], { env });
    expect(without.code).toBe(10);
    // scrypt's head start (startup/early-kek.ts) follows -r: started again once the flags are read.
    const timed = await run(['snapshots', '-r', repo], { env: { ...env, KEEP_DEBUG_TIMING: '1' } });
    expect(timed.code, timed.stderr).toBe(0);
    expect(timed.stderr).toMatch(/ main\n(.*\n)*.* early scrypt started\n/);
    stderrs.pop(); // timing lines, not errors
  });

  it('--env-file on `keep snapshots`: comments, export, quotes; the environment and flags win over it', async () => {
    const envFile = path.join(dir, 'keep.env');
    fs.writeFileSync(
      envFile,
      ['# the production repository', '', `export KEEP_REPO="${repo}"   # inline comment`, `KEEP_PASSWORD_FILE='${passFile}'`, 'KEEP_PG_SOURCE = db-main # unused here', ''].join('\n'),
      { mode: 0o600 },
    );
    const r = await run(['snapshots', '--env-file', envFile, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(ids(r)).toEqual([snapshot]);
    // A variable already set wins over the file (dotenv's rule) ...
    const envWins = await run(['--env-file', envFile, 'snapshots'], { env: { KEEP_REPO: empty } });
    expect(envWins.code, envWins.stderr).toBe(10);
    // ... and a flag over both.
    const flagWins = await run(['--env-file', envFile, 'snapshots', '-r', repo, '--json'], { env: { KEEP_REPO: empty } });
    expect(flagWins.code, flagWins.stderr).toBe(0);
    expect(ids(flagWins)).toEqual([snapshot]);
    const bad = path.join(dir, 'bad.env');
    fs.writeFileSync(bad, `KEEP_REPO=${repo}\nthis line is not an assignment ${PASS}\n`);
    const badRun = await run(['snapshots', '--env-file', bad]);
    expect(badRun.code).toBe(2);
    expect(badRun.stderr).toMatch(/line 2 is not KEY=VALUE/);
  });

  it('`keep pg config` names the global --env-file, or inlines what the flags gave (no PostgreSQL needed)', async () => {
    const envFile = path.join(dir, 'pg.env');
    fs.writeFileSync(envFile, `KEEP_REPO=${repo}\nKEEP_PASSWORD_FILE=${passFile}\n`, { mode: 0o600 });
    const named = await run(['pg', 'config', '--env-file', path.relative(process.cwd(), envFile), '--source', 'db', '--json']);
    expect(named.code, named.stderr).toBe(0);
    expect(JSON.parse(named.stdout).archive_command).toMatch(new RegExp(` pg wal-push --env-file ${envFile} --source db %p$`));
    const inline = await run(['pg', 'config', '-r', repo, '--password-command', `cat ${passFile}`, '--source', 'db', '--json']);
    expect(inline.code, inline.stderr).toBe(0);
    expect(JSON.parse(inline.stdout).restore_command).toMatch(new RegExp(`^KEEP_REPO=${repo} KEEP_PASSWORD_COMMAND='cat ${passFile}' .* pg wal-fetch --source db %f %p$`));
  });

  it('without a passphrase and without a terminal: exit 2 naming every way to give one', async () => {
    const r = await run(['snapshots', '-r', repo]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--password-file or --password-command.*KEEP_PASSWORD_COMMAND.*terminal/);
  });

  it.skipIf(!hasScript)('on a terminal the passphrase is asked for on stderr and never echoed; a wrong one exits 12', async () => {
    const ok = await onTerminal(['snapshots', '-r', repo], [PASS], {});
    expect(ok.code, ok.screen).toBe(0);
    expect(ok.screen).toMatch(/^enter passphrase for repository: /);
    expect(ok.screen).toContain(snapshot.slice(0, 8));
    expect(ok.screen).not.toContain(PASS);
    const wrong = await onTerminal(['snapshots', '-r', repo], [WRONG], {});
    expect(wrong.code, wrong.screen).toBe(12);
    expect(wrong.screen).toMatch(/wrong passphrase/);
    expect(wrong.screen).not.toContain(WRONG);
    // Ctrl-C at the question: interrupted, 130.
    const interrupted = await onTerminal(['snapshots', '-r', repo], ['\u0003'], {});
    expect(interrupted.code, interrupted.screen).toBe(130);
    expect(interrupted.screen).toMatch(/keep: interrupted/);
        // A passphrase from the environment: nothing is asked.
    const given = await onTerminal(['snapshots', '-r', repo], [], { KEEP_PASSWORD_FILE: passFile });
    expect(given.code, given.screen).toBe(0);
    expect(given.screen).not.toMatch(/enter passphrase/);
  });

  it.skipIf(!hasScript)('`keep init` and `key add` ask twice and compare', async () => {
    const other = path.join(dir, 'typed-repo');
    const mismatch = await onTerminal(['init', '-r', other, '--kdf-cost', '12'], [PASS, `${PASS}x`], {});
    expect(mismatch.code, mismatch.screen).toBe(1);
    expect(mismatch.screen).toMatch(/enter passphrase for new repository: .*\n.*enter passphrase again: .*\n.*do not match/s);
    expect(fs.existsSync(other), 'nothing is created when the two differ').toBe(false);
    const init = await onTerminal(['init', '-r', other, '--kdf-cost', '12'], [PASS, PASS], {});
    expect(init.code, init.screen).toBe(0);
    expect(init.screen).toMatch(/created repository/);

    const add = await onTerminal(['key', 'add', '--kdf-cost', '12', '-r', other], [NEW_PASS, NEW_PASS], { KEEP_PASSWORD: PASS });
    expect(add.code, add.screen).toBe(0);
    expect(add.screen).toMatch(/enter new passphrase: .*\n.*enter passphrase again: .*\n.*added key/s);
    const newFile = path.join(dir, 'new-pass');
    fs.writeFileSync(newFile, NEW_PASS, { mode: 0o600 });
    const opens = await run(['snapshots', '-r', other, '--password-file', newFile]);
    expect(opens.code, opens.stderr).toBe(0);
    for (const s of [mismatch, init, add]) expect(s.screen).not.toMatch(new RegExp(`${PASS}|${NEW_PASS}`));
  });
});

describe('credentials for a keepd over gRPC', () => {
  const tmp = tempDirs();
  let dir: string;
  let url: string;
  let tokenFile: string;
  let secret: string;

  beforeAll(async () => {
    dir = tmp.make('keep-credentials-grpc-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const token = await createToken(data, 'admin');
    secret = tokenSecret(token.token);
    tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${token.token}\n`, { mode: 0o600 });
    url = (await startKeepd(data)).url;
  });

  afterAll(killAllKeepd);

  it('--token-file (beating KEEP_TOKEN) with --password-file: init, backup, snapshots', async () => {
    const passFile = path.join(dir, 'pass');
    fs.writeFileSync(passFile, PASS, { mode: 0o600 });
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'b.txt'), 'over grpc\n'.repeat(200));
    const flags = ['-r', url, '--token-file', tokenFile, '--password-file', passFile];
    const init = await run(['init', ...flags, '--kdf-cost', '12']);
    expect(init.code, init.stderr).toBe(0);
    const backup = await run([...flags, 'backup', src, '--source', 'web', '--json'], { env: { KEEP_TOKEN: 'keep_0000000000000000_bogus' } });
    expect(backup.code, backup.stderr).toBe(0);
    const snap = summaryLine(backup).snapshot;
    const list = await run(['snapshots', '--json', ...flags]);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((s) => s.id)).toEqual([snap]);
    // Without a token keepd says no, and the message points at the flag's variable.
    const none = await run(['snapshots', '-r', url, '--password-file', passFile]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/KEEP_TOKEN/);
    // The same through --env-file.
    const envFile = path.join(dir, 'agent.env');
    fs.writeFileSync(envFile, `KEEP_REPO=${url}\nKEEP_TOKEN_FILE=${tokenFile}\nKEEP_PASSWORD_FILE=${passFile}\n`, { mode: 0o600 });
    const viaFile = await run(['snapshots', '--env-file', envFile, '--json']);
    expect(viaFile.code, viaFile.stderr).toBe(0);
    expect(secret.length).toBeGreaterThan(20);
  });

  it('no passphrase or token secret ever reached stderr (or the terminal) in this file', () => {
    expect(stderrs.length).toBeGreaterThan(10);
    for (const s of stderrs) {
      expect(s).not.toContain(PASS);
      expect(s).not.toContain(NEW_PASS);
      expect(s).not.toContain(WRONG);
      if (secret) expect(s).not.toContain(secret);
    }
  });
});
