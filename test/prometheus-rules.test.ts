/**
 * deploy/prometheus/keep-rules.yaml: `promtool check rules` accepts it (and
 * rejects a broken copy, so the check is real), and every keep_* metric its
 * expressions use is one a real keepd's /metrics exports.
 *
 * promtool comes from scripts/test-deps.mjs (Debian's prometheus package,
 * its service not started); run here when missing and root, else the
 * promtool steps skip with the reason.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';
import { keepdInit, killAllKeepd, startKeepd } from './keepd-harness.js';

const RULES = path.join(ROOT, 'deploy', 'prometheus', 'keep-rules.yaml');
const findPromtool = () => ['/usr/bin/promtool', '/usr/local/bin/promtool', '/bin/promtool'].find((p) => fs.existsSync(p));

let PROMTOOL = findPromtool();
if (!PROMTOOL && process.getuid?.() === 0) {
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'test-deps.mjs')], { stdio: 'inherit', timeout: 900_000 });
  } catch {
    // reported below
  }
  PROMTOOL = findPromtool();
}
const NO_PROMTOOL = PROMTOOL ? undefined : `promtool is not installed and could not be installed${process.getuid?.() === 0 ? '' : ' (not root)'}: run \`node scripts/test-deps.mjs\` as root, or apt-get install --no-install-recommends prometheus`;
if (NO_PROMTOOL) console.warn(`prometheus-rules: promtool check rules SKIPPED: ${NO_PROMTOOL}`);

const tmp = tempDirs();

describe('the shipped Prometheus alerting rules', () => {
  afterAll(killAllKeepd);

  it.skipIf(Boolean(NO_PROMTOOL))('pass promtool check rules, and a broken copy does not', () => {
    const ok = spawnSync(PROMTOOL!, ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const broken = path.join(tmp.make('keep-rules-'), 'broken.yaml');
    fs.writeFileSync(broken, fs.readFileSync(RULES, 'utf8').replace('keep_source_state{state="late"} == 1', 'keep_source_state{state="late" == 1'));
    expect(spawnSync(PROMTOOL!, ['check', 'rules', broken], { encoding: 'utf8' }).status).not.toBe(0);
  });

  it('use only metrics a real keepd exports', async () => {
    const used = new Set(fs.readFileSync(RULES, 'utf8').match(/\bkeep_[a-z_]+/g));
    expect(used.size).toBeGreaterThan(5);
    const data = path.join(tmp.make('keep-rules-keepd-'), 'data');
    await keepdInit(data);
    const k = await startKeepd(data, { metrics: true });
    const text = await (await fetch(`http://127.0.0.1:${k.metricsPort}/metrics`)).text();
    for (const name of used) expect(text, name).toContain(`# TYPE ${name} `);
  });
});
