#!/usr/bin/env node
/**
 * Test dependencies beyond Node and npm: PostgreSQL, for test/pg-*.test.ts
 * (point-in-time recovery against a real server), and systemd-analyze, for
 * test/install-units.test.ts (`systemd-analyze verify` of the units keep and
 * keepd install), and jq, for test/restic-script.test.ts, and promtool, for
 * test/prometheus-rules.test.ts (`promtool check rules` of
 * deploy/prometheus/keep-rules.yaml), and chromium, for test/dashboard.test.ts
 * (headless Chromium driven by playwright-core), and Ceph (ceph-mon, ceph-osd,
 * radosgw, ceph-common), for test/store-conformance.test.ts (a single-node
 * RADOS Gateway started by test/rgw-harness.ts; no Ceph service is started here).
 *
 * Idempotent and fast when present: it only looks for
 * /usr/lib/postgresql/N/bin/initdb and for systemd-analyze on the PATH. When
 * missing, on a Debian or Ubuntu machine and as root, it installs:
 * - the distribution's `postgresql` package without creating or starting the
 *   system cluster (the tests run their own clusters on private sockets, as
 *   the `postgres` user the package creates);
 * - Debian's `systemd` package, for systemd-analyze, without making it the
 *   init system (no systemd-sysv, no recommends) and with a policy-rc.d that
 *   forbids starting any service while it installs: in a container that runs
 *   no systemd, nothing is started, re-executed or enabled;
 * - Debian's `prometheus` package, for promtool, under the same policy-rc.d
 *   (its prometheus service is not started).
 * Anywhere else it says why it cannot and exits 0: those tests then skip with
 * that reason, everything else still runs.
 *
 *   node scripts/test-deps.mjs            install if needed
 *   node scripts/test-deps.mjs --bench    and the peers the benchmarks compare with (restic, borg)
 *   node scripts/test-deps.mjs --check    report only, never install
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const PG_ROOT = '/usr/lib/postgresql';

function findInitdb() {
  try {
    for (const v of fs.readdirSync(PG_ROOT).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a))) {
      const p = path.join(PG_ROOT, v, 'bin', 'initdb');
      if (fs.existsSync(p)) return p;
    }
  } catch {
    // not installed
  }
  return undefined;
}

function say(msg) {
  process.stderr.write(`test-deps: ${msg}\n`);
}

const CHECK_ONLY = process.argv.includes('--check');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const apt = (args) => execFileSync('apt-get', ['-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef', ...args], { stdio: 'inherit', env });
let updated = false;
const aptUpdateOnce = () => {
  if (!updated) apt(['update']);
  updated = true;
};

/** Why `what` cannot be installed here, or undefined when apt-get as root can. */
function cannotInstall(what, hint) {
  if (process.platform !== 'linux' || !fs.existsSync('/usr/bin/apt-get')) return `${what} not installed and no apt-get here: ${hint}`;
  if (process.getuid?.() !== 0) return `${what} not installed and not root: ${hint}`;
  return undefined;
}

function ensurePostgres() {
  const found = findInitdb();
  if (found) return say(`PostgreSQL present (${path.dirname(found)})`);
  if (CHECK_ONLY) return say('PostgreSQL not installed (the PostgreSQL tests will skip)');
  const why = cannotInstall('PostgreSQL', 'run `sudo apt-get install -y postgresql` (initdb under /usr/lib/postgresql/N/bin) or the PostgreSQL tests skip');
  if (why) return say(why);
  const started = Date.now();
  say('installing PostgreSQL (apt-get install postgresql)…');
  aptUpdateOnce();
  // postgresql-common first, so the package does not create (and start) a "main" system cluster.
  apt(['install', '-y', '--no-install-recommends', 'postgresql-common']);
  const conf = '/etc/postgresql-common/createcluster.conf';
  if (fs.existsSync(conf)) {
    const text = fs.readFileSync(conf, 'utf8');
    if (!/^\s*create_main_cluster\s*=\s*false/m.test(text)) fs.writeFileSync(conf, text.replace(/^#?\s*create_main_cluster\s*=.*$/m, 'create_main_cluster = false'));
  }
  apt(['install', '-y', '--no-install-recommends', 'postgresql']);
  const now = findInitdb();
  if (!now) {
    say('apt-get finished but no initdb under /usr/lib/postgresql/N/bin');
    process.exitCode = 1;
    return;
  }
  say(`PostgreSQL installed (${path.dirname(now)}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', name);
    if (fs.existsSync(p)) return p;
  }
  return ['/usr/bin', '/bin'].map((d) => path.join(d, name)).find((p) => fs.existsSync(p));
}

const POLICY_RC_D = '/usr/sbin/policy-rc.d';

/**
 * apt-get install `pkg` with Debian's "do not start services" switch for
 * chroots and containers (invoke-rc.d and deb-systemd-invoke obey
 * policy-rc.d): 101 = action forbidden. Ours only while apt runs.
 */
function installStartingNothing(pkg) {
  const pkgs = pkg.split(' ');
  const ownPolicy = !fs.existsSync(POLICY_RC_D);
  if (ownPolicy) fs.writeFileSync(POLICY_RC_D, `#!/bin/sh\n# written by keep scripts/test-deps.mjs while it installs ${pkg}\nexit 101\n`, { mode: 0o755 });
  try {
    aptUpdateOnce();
    apt(['install', '-y', '--no-install-recommends', ...pkgs]);
  } finally {
    if (ownPolicy) fs.rmSync(POLICY_RC_D, { force: true });
  }
}

function ensureSystemdAnalyze() {
  const found = findOnPath('systemd-analyze');
  if (found) return say(`systemd-analyze present (${found})`);
  if (CHECK_ONLY) return say('systemd-analyze not installed (test/install-units.test.ts will not verify the units)');
  const why = cannotInstall('systemd-analyze', 'run `sudo apt-get install -y --no-install-recommends systemd` or the units are not verified');
  if (why) return say(why);
  const started = Date.now();
  say('installing systemd-analyze (apt-get install --no-install-recommends systemd; no service started)…');
  // systemd only: not systemd-sysv (which would make it /sbin/init), not its recommends (dbus, ...)
  installStartingNothing('systemd');
  const now = findOnPath('systemd-analyze');
  if (!now) {
    say('apt-get finished but there is no systemd-analyze');
    process.exitCode = 1;
    return;
  }
  say(`systemd-analyze installed (${now}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/**
 * A program from Debian packages (`pkg`, space-separated), needed by `test` only: present,
 * or installed under the no-services policy, or a reason on stderr (that test
 * then skips or checks less).
 */
function ensureTool(bin, pkg, test) {
  const found = findOnPath(bin);
  if (found) return say(`${bin} present (${found})`);
  if (CHECK_ONLY) return say(`${bin} not installed (${test} will skip)`);
  const why = cannotInstall(bin, `run \`sudo apt-get install -y --no-install-recommends ${pkg}\` or ${test} skips`);
  if (why) return say(why);
  say(`installing ${bin} (apt-get install --no-install-recommends ${pkg}; no service started)…`);
  installStartingNothing(pkg);
  say(findOnPath(bin) ? `${bin} installed` : `apt-get finished but there is no ${bin}`);
}

ensurePostgres();
ensureSystemdAnalyze();
// jq: a restic user's script pipes `--json` through it
ensureTool('jq', 'jq', 'test/restic-script.test.ts');
// promtool: Debian ships it in the prometheus package (whose service is not started)
ensureTool('promtool', 'prometheus', 'test/prometheus-rules.test.ts');
// chromium: playwright-core drives Debian's headless Chromium (no browser download)
ensureTool('chromium', 'chromium', 'test/dashboard.test.ts');
// Ceph: test/rgw-harness.ts runs its own single-node cluster (one mon, one memstore OSD, radosgw) in a temp dir
ensureTool('radosgw', 'ceph-mon ceph-osd radosgw ceph-common', 'test/store-conformance.test.ts (RGW)');
// the peers `pnpm bench` compares with (bench/src/tools.ts runs each one found on the PATH)
if (process.argv.includes('--bench')) {
  ensureTool('restic', 'restic', "the bench's restic columns");
  ensureTool('borg', 'borgbackup', "the bench's borg columns");
}
