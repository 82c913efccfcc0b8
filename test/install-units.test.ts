/**
 * `keep agent install` and `keepd install` into temporary directories
 * (--unit-dir, --prefix, --config, --data): each unit passes
 * `systemd-analyze verify` (which also checks that ExecStart's program
 * exists and is executable: --prefix points at the real launchers), the
 * program the unit runs accepts the example config (check-config, every job
 * kind the schema has), the environment file is 0600, a second install
 * replaces the unit but never the config or the environment file, and
 * --dry-run writes nothing.
 *
 * systemd-analyze comes from scripts/test-deps.mjs (Debian's systemd package,
 * installed as root without starting anything); this file runs it when the
 * program is missing, and skips the verify steps with the reason only when
 * it cannot be installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keep, ROOT, tempDirs } from './helpers.js';
import { runKeepd } from './keepd-harness.js';

function findAnalyze(): string | undefined {
  return ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => fs.existsSync(p));
}

let ANALYZE = findAnalyze();
if (!ANALYZE && process.getuid?.() === 0) {
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'test-deps.mjs')], { stdio: 'inherit', timeout: 900_000 });
  } catch {
    // reported below
  }
  ANALYZE = findAnalyze();
}
const NO_VERIFY = ANALYZE ? undefined : `systemd-analyze is not installed and could not be installed${process.getuid?.() === 0 ? '' : ' (not root)'}: run \`node scripts/test-deps.mjs\` as root, or apt-get install --no-install-recommends systemd`;
if (NO_VERIFY) console.warn(`install-units: systemd-analyze verify SKIPPED: ${NO_VERIFY}`);

const tmp = tempDirs();

/** `systemd-analyze verify UNIT`: exit 0 and nothing said about the unit (an unknown key is only a warning). */
function verify(unit: string): void {
  if (!ANALYZE) return;
  const r = spawnSync(ANALYZE, ['verify', unit], { encoding: 'utf8' });
  const about = r.stderr.split('\n').filter((l) => l.includes(path.basename(unit)));
  expect({ code: r.status, about }, r.stderr).toEqual({ code: 0, about: [] });
}

/** A prefix whose bin/ holds the real launchers, as an unpacked package's does. */
function makePrefix(): string {
  const prefix = tmp.make('keep-install-prefix-');
  fs.mkdirSync(path.join(prefix, 'bin'));
  fs.symlinkSync(path.join(ROOT, 'agent', 'bin', 'keep.js'), path.join(prefix, 'bin', 'keep'));
  fs.symlinkSync(path.join(ROOT, 'server', 'bin', 'keepd.js'), path.join(prefix, 'bin', 'keepd'));
  return prefix;
}

/** `Key=value` lines of a unit, by key (repeated keys in order). */
function settings(unit: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of fs.readFileSync(unit, 'utf8').split('\n')) {
    const hit = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (hit) m.set(hit[1], [...(m.get(hit[1]) ?? []), hit[2]]);
  }
  return m;
}

function one(s: Map<string, string[]>, key: string): string | undefined {
  const v = s.get(key);
  expect(v?.length ?? 0, `${key}= once`).toBeLessThanOrEqual(1);
  return v?.[0];
}

/** The job kinds config-schema.ts accepts: the example config shows every one. */
function jobKinds(): string[] {
  const src = fs.readFileSync(path.join(ROOT, 'agent', 'src', 'service', 'config-schema.ts'), 'utf8');
  return [...src.matchAll(/type: v\.literal\('([a-z]+)'\)/g)].map((m) => m[1]).sort();
}

function modeOf(f: string): number {
  return fs.statSync(f).mode & 0o777;
}

describe('keep agent install', () => {
  const prefix = makePrefix();

  it('writes a unit systemd-analyze verifies, an example config that passes check-config, and a 0600 environment file', async () => {
    const dir = tmp.make('keep-agent-install-');
    const config = path.join(dir, 'etc', 'agent.yaml');
    const unitDir = path.join(dir, 'units');
    const r = await keep(['agent', 'install', '--config', config, '--unit-dir', unitDir, '--prefix', prefix, '--user', 'keep', '--grace', '45s']);
    expect(r.code, r.stderr).toBe(0);
    const unit = path.join(unitDir, 'keep-agent.service');
    const env = path.join(dir, 'etc', 'agent.env');
    expect(r.stdout).toContain(`written       ${unit} (mode 0644)`);
    expect(r.stdout).toContain(`written       ${config} (mode 0644)`);
    expect(r.stdout).toContain(`written       ${env} (mode 0600)`);
    expect(r.stdout).toContain('systemctl daemon-reload && systemctl enable --now keep-agent.service');
    expect(modeOf(env)).toBe(0o600);
    expect(modeOf(unit)).toBe(0o644);
    // secrets by reference only: every setting names a file
    const envLines = fs.readFileSync(env, 'utf8').split('\n').filter((l) => /^[A-Z_]+=/.test(l));
    expect(envLines).toEqual([`KEEP_PASSWORD_FILE=${path.join(dir, 'etc', 'password')}`]);

    const s = settings(unit);
    const program = path.join(prefix, 'bin', 'keep');
    expect(one(s, 'ExecStart')).toBe(`${program} agent run --config ${config} --grace 45s`);
    expect(one(s, 'TimeoutStopSec')).toBe('75');
    expect(one(s, 'User')).toBe('keep');
    expect(one(s, 'EnvironmentFile')).toBe(env);
    expect(Object.fromEntries(['Type', 'Restart', 'KillSignal', 'StateDirectory', 'RuntimeDirectory', 'NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'CapabilityBoundingSet', 'RestrictAddressFamilies', 'ReadWritePaths'].map((k) => [k, one(s, k)]))).toEqual({
      Type: 'simple',
      Restart: 'on-failure',
      KillSignal: 'SIGTERM',
      StateDirectory: 'keep',
      RuntimeDirectory: 'keep',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'read-only',
      PrivateTmp: 'yes',
      CapabilityBoundingSet: 'CAP_DAC_READ_SEARCH',
      RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
      ReadWritePaths: '/var/lib/keep /var/cache/keep',
    });
    for (const k of ['ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs']) expect(one(s, k), k).toBe('yes');
    verify(unit);
    if (ANALYZE) {
      // verify is not a formality: the same unit with its program gone, or a misspelt key, fails it
      const broken = path.join(dir, 'broken.service');
      fs.writeFileSync(broken, fs.readFileSync(unit, 'utf8').replace(program, path.join(dir, 'no-such-keep')).replace('ProtectHome=', 'ProtectHomes='));
      const r = spawnSync(ANALYZE, ['verify', broken], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/broken\.service:\d+: Unknown key.*'ProtectHomes'/);
    }

    // the program the unit runs accepts the config it was given, and the example shows every job kind
    const check = spawnSync(program, ['agent', 'check-config', '--config', config, '--json'], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    const out = JSON.parse(check.stdout);
    expect(out.ok).toBe(true);
    expect(out.warnings).toEqual([]);
    expect([...new Set(out.jobs.map((j: { type: string }) => j.type))].sort()).toEqual(jobKinds());
  });

  it('a second install replaces the unit but never the config or the environment file', async () => {
    const dir = tmp.make('keep-agent-reinstall-');
    const config = path.join(dir, 'agent.yaml');
    const env = path.join(dir, 'agent.env');
    const unitDir = path.join(dir, 'units');
    const args = ['agent', 'install', '--config', config, '--unit-dir', unitDir, '--prefix', prefix];
    expect((await keep(args)).code).toBe(0);
    // the administrator's own: a local repository, and a loosened env file mode left as they set it
    const repo = path.join(dir, 'repo');
    const own = `repository:\n  location: ${repo}\njobs:\n  - name: etc\n    type: files\n    paths: [/etc]\n`;
    fs.writeFileSync(config, own);
    fs.writeFileSync(env, 'KEEP_PASSWORD_FILE=/root/keep-password\n');
    fs.chmodSync(env, 0o640);
    const r = await keep([...args, '--grace', '2m']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`replaced      ${path.join(unitDir, 'keep-agent.service')}`);
    expect(r.stdout).toContain(`kept          ${config}`);
    expect(r.stdout).toContain(`kept          ${env} (mode 0640)`);
    expect(fs.readFileSync(config, 'utf8')).toBe(own);
    expect(fs.readFileSync(env, 'utf8')).toBe('KEEP_PASSWORD_FILE=/root/keep-password\n');
    const unit = path.join(unitDir, 'keep-agent.service');
    const s = settings(unit);
    expect(one(s, 'TimeoutStopSec')).toBe('150');
    expect(one(s, 'User')).toBeUndefined();
    // the embedded repository the config names is writable to the service
    expect(one(s, 'ReadWritePaths')).toBe(`/var/lib/keep /var/cache/keep ${repo}`);
    expect(fs.readdirSync(unitDir)).toEqual(['keep-agent.service']);
    verify(unit);
  });

  it('--dry-run prints the unit and writes nothing', async () => {
    const dir = tmp.make('keep-agent-dry-');
    const r = await keep(['agent', 'install', '--config', path.join(dir, 'etc', 'agent.yaml'), '--unit-dir', path.join(dir, 'units'), '--prefix', prefix, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`dry run: nothing written; ${path.join(dir, 'units', 'keep-agent.service')} would read:`);
    expect(r.stdout).toContain(`ExecStart=${path.join(prefix, 'bin', 'keep')} agent run --config ${path.join(dir, 'etc', 'agent.yaml')} --grace 60s`);
    expect(r.stdout).toContain(`would write   ${path.join(dir, 'etc', 'agent.env')} (mode 0600)`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a --prefix without bin/keep is a usage error, and nothing is written', async () => {
    const dir = tmp.make('keep-agent-noprefix-');
    const r = await keep(['agent', 'install', '--config', path.join(dir, 'agent.yaml'), '--unit-dir', path.join(dir, 'units'), '--prefix', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--prefix ${dir}: no executable ${path.join(dir, 'bin', 'keep')}`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('keepd install', () => {
  const prefix = makePrefix();

  it('writes keepd.service: keepd serve --data DIR, stricter hardening, verified by systemd-analyze', async () => {
    const dir = tmp.make('keepd-install-');
    const data = path.join(dir, 'data');
    const unitDir = path.join(dir, 'units');
    const r = await runKeepd(['install', '--data', data, '--unit-dir', unitDir, '--prefix', prefix, '--user', 'keep']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('systemctl daemon-reload && systemctl enable --now keepd.service');
    const unit = path.join(unitDir, 'keepd.service');
    const s = settings(unit);
    expect(one(s, 'ExecStart')).toBe(`${path.join(prefix, 'bin', 'keepd')} serve --data ${data} --listen 127.0.0.1:7420`);
    expect(Object.fromEntries(['User', 'ProtectSystem', 'ProtectHome', 'ReadWritePaths', 'CapabilityBoundingSet', 'AmbientCapabilities', 'NoNewPrivileges', 'LimitNOFILE', 'StateDirectory'].map((k) => [k, one(s, k)]))).toEqual({
      User: 'keep',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      ReadWritePaths: data,
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      NoNewPrivileges: 'yes',
      LimitNOFILE: '65536',
      StateDirectory: undefined, // not under /var/lib: the administrator makes it
    });
    verify(unit);
    // the data directory is keepd init's to make
    expect(fs.existsSync(data)).toBe(false);
  });

  it('serves TLS when keepd tls init made DIR/tls; a StateDirectory under /var/lib; --dry-run writes nothing', async () => {
    const dir = tmp.make('keepd-install-tls-');
    const data = path.join(dir, 'data');
    const unitDir = path.join(dir, 'units');
    expect((await runKeepd(['tls', 'init', '--data', data, '--host', 'backup.example.net'])).code).toBe(0);
    const r = await runKeepd(['install', '--data', data, '--unit-dir', unitDir, '--prefix', prefix, '--listen', '0.0.0.0:7420']);
    expect(r.code, r.stderr).toBe(0);
    const unit = path.join(unitDir, 'keepd.service');
    expect(one(settings(unit), 'ExecStart')).toBe(`${path.join(prefix, 'bin', 'keepd')} serve --data ${data} --listen 0.0.0.0:7420 --tls-cert ${data}/tls/server.pem --tls-key ${data}/tls/server-key.pem`);
    expect(one(settings(unit), 'User')).toBe('keep');
    verify(unit);

    const dry = await runKeepd(['install', '--unit-dir', path.join(dir, 'dry-units'), '--prefix', prefix, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('ExecStart=');
    expect(dry.stdout).toMatch(/^StateDirectory=keepd$/m);
    expect(dry.stdout).toMatch(/^ReadWritePaths=\/var\/lib\/keepd$/m);
    expect(fs.existsSync(path.join(dir, 'dry-units'))).toBe(false);
  });
});
