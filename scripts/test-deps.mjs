#!/usr/bin/env node
/**
 * Test dependencies beyond Node and npm: PostgreSQL, for test/pg-*.test.ts
 * (point-in-time recovery against a real server).
 *
 * Idempotent and fast when present: it only looks for
 * /usr/lib/postgresql/N/bin/initdb. When missing, on a Debian or Ubuntu
 * machine and as root, it installs the distribution's `postgresql` package
 * without creating or starting the system cluster (the tests run their own
 * clusters on private sockets, as the `postgres` user the package creates).
 * Anywhere else it says why it cannot and exits 0: the PostgreSQL tests then
 * skip with that reason, everything else still runs.
 *
 *   node scripts/test-deps.mjs            install if needed
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

const found = findInitdb();
if (found) {
  say(`PostgreSQL present (${path.dirname(found)})`);
  process.exit(0);
}
if (process.argv.includes('--check')) {
  say('PostgreSQL not installed (the PostgreSQL tests will skip)');
  process.exit(0);
}
if (process.platform !== 'linux' || !fs.existsSync('/usr/bin/apt-get')) {
  say('PostgreSQL not installed and no apt-get here: install PostgreSQL (initdb under /usr/lib/postgresql/N/bin) or the PostgreSQL tests skip');
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  say('PostgreSQL not installed and not root: run `sudo apt-get install -y postgresql` or the PostgreSQL tests skip');
  process.exit(0);
}

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const apt = (args) => execFileSync('apt-get', ['-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef', ...args], { stdio: 'inherit', env });
const started = Date.now();
say('installing PostgreSQL (apt-get install postgresql)…');
apt(['update']);
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
  process.exit(1);
}
say(`PostgreSQL installed (${path.dirname(now)}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
