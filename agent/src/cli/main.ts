import { EXIT, exitOnInterrupt, formatVersionReport, helpFor, KeepError, reportExitError, surviveLmdbWriteFailures, versionReport } from '@keep/core';
import { adminCommand } from '../commands/admin.js';
import { agentCommand } from '../commands/agent.js';
import { backupCommand } from '../commands/backup.js';
import { catCommand } from '../commands/cat.js';
import { checkCommand } from '../commands/check.js';
import { diffCommand } from '../commands/diff.js';
import { dumpCommand } from '../commands/dump.js';
import { findCommand } from '../commands/find.js';
import { forgetCommand } from '../commands/forget.js';
import { initCommand } from '../commands/init.js';
import { keyCommand } from '../commands/key.js';
import { lsCommand } from '../commands/ls.js';
import { pgCommand } from '../commands/pg.js';
import { restoreCommand } from '../commands/restore.js';
import { drillCommand } from '../commands/drill.js';
import { snapshotsCommand } from '../commands/snapshots.js';
import { statsCommand } from '../commands/stats.js';
import { tagCommand } from '../commands/tag.js';
import { mark } from '../startup/timing.js';
import { startEarlyKek } from '../startup/early-kek.js';
import { applyGlobalFlags, takeGlobalFlags } from '../terminal/global-flags.js';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { USAGE } from '../commands/usage.js';

/** `keep version` / `keep --version`: restic's line, plus the repository formats. */
async function versionCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {});
  const report = versionReport('keep', import.meta.url);
  if (values.json) printJson(report);
  else console.log(formatVersionReport(report));
}

/** A command returns its exit code when it finished with something to report (backup: EXIT.PARTIAL). */
const commands: Record<string, (argv: string[]) => Promise<void | number>> = {
  init: initCommand,
  backup: backupCommand,
  snapshots: snapshotsCommand,
  restore: restoreCommand,
  drill: drillCommand,
  ls: lsCommand,
  diff: diffCommand,
  dump: dumpCommand,
  cat: catCommand,
  find: findCommand,
  stats: statsCommand,
  forget: forgetCommand,
  tag: tagCommand,
  check: checkCommand,
  key: keyCommand,
  pg: pgCommand,
  version: versionCommand,
  agent: agentCommand,
  admin: adminCommand,
};

async function main(argv: string[]): Promise<void | number> {
  mark('main');
  exitOnInterrupt('keep');
  const global = takeGlobalFlags(argv);
  argv = global.argv;
  // Help before any command runs, before --env-file is read: no repository, no environment needed.
  const help = helpFor('keep', USAGE, argv);
  if (help !== undefined) return void console.log(help);
  const before = earlyKekInputs();
  applyGlobalFlags(global.flags);
  // bin/keep.js started scrypt from the environment alone; flags that name another repository or passphrase file start it again.
  if (earlyKekInputs() !== before) startEarlyKek(process.env);
  const [name, ...rest] = argv;
  if (name === '--version') return versionCommand(rest);
  const cmd = commands[name];
  if (!cmd) throw new KeepError('INVALID_ARGUMENT', `unknown command ${name} (see keep help)`);
  return cmd(rest);
}

const earlyKekInputs = () => JSON.stringify([process.env.KEEP_REPO, process.env.KEEP_PASSWORD, process.env.KEEP_PASSWORD_FILE]);

// An embedded repository's index write that failed for a full disk is reported by the command that made it.
surviveLmdbWriteFailures(() => undefined);

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    mark('exit');
    process.exit(code ?? EXIT.OK);
  },
  (e: Error) => {
    const code = reportExitError('keep', e, argv.includes('--json'));
    if (!(e instanceof KeepError) && process.env.KEEP_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(code);
  },
);
