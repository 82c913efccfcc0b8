import { EXIT, exitCodeFor, exitOnInterrupt, KeepError, surviveLmdbWriteFailures } from '@keep/core';
import { backupCommand } from '../commands/backup.js';
import { catCommand } from '../commands/cat.js';
import { checkCommand } from '../commands/check.js';
import { diffCommand } from '../commands/diff.js';
import { dumpCommand } from '../commands/dump.js';
import { findCommand } from '../commands/find.js';
import { initCommand } from '../commands/init.js';
import { keyCommand } from '../commands/key.js';
import { lsCommand } from '../commands/ls.js';
import { pgCommand } from '../commands/pg.js';
import { restoreCommand } from '../commands/restore.js';
import { snapshotsCommand } from '../commands/snapshots.js';
import { statsCommand } from '../commands/stats.js';
import { mark } from '../startup/timing.js';
import { startEarlyKek } from '../repo/early-kek.js';
import { applyGlobalFlags, GLOBAL_FLAGS_USAGE, takeGlobalFlags } from './global-flags.js';


const USAGE = `keep — deduplicating, end-to-end encrypted backups

usage: keep [global flags] COMMAND [options]

  init                       create the repository's master key, wrapped by the passphrase
                             [--chunk-min S --chunk-avg S --chunk-max S] [--kdf-cost K]
  backup PATH...             back up files and directories [--source N] [--tag T]... [--compression none|low|medium|high] [--tier T]
  backup --stdin --stdin-name NAME   back up a stream
  snapshots                  list snapshots [--source N]
  restore SNAPSHOT|latest --target DIR [--source N] [--at TIME] [--include PATH]...
  ls SNAPSHOT [PATH]         list a snapshot's files
  diff SNAPSHOT SNAPSHOT     what changed between two snapshots
  stats                      repository size and space saved
  check [--read-data | --read-data-subset PCT%]   verify the repository
  key add|list|remove ID|passwd   manage passphrases (the new one: --new-password-file, KEEP_NEW_PASSWORD(_FILE) or asked twice)
  pg backup|wal-push|wal-fetch|restore|config|info   PostgreSQL point-in-time recovery (keep pg help)

${GLOBAL_FLAGS_USAGE}

exit codes: 0 ok, 1 fatal error, 2 bad usage, 3 backup saved but some entries could not be read
(listed as warnings), 4 damage found (check, restore), 10 no repository, 11 repository locked,
12 wrong passphrase, 130 interrupted`;

/** A command returns its exit code when it finished with something to report (backup: EXIT.PARTIAL). */
const commands: Record<string, (argv: string[]) => Promise<void | number>> = {
  init: initCommand,
  backup: backupCommand,
  snapshots: snapshotsCommand,
  restore: restoreCommand,
  ls: lsCommand,
  diff: diffCommand,
  dump: dumpCommand,
  cat: catCommand,
  find: findCommand,
  stats: statsCommand,
  check: checkCommand,
  key: keyCommand,
  pg: pgCommand,
};

async function main(argv: string[]): Promise<void | number> {
  mark('main');
  exitOnInterrupt('keep');
  const global = takeGlobalFlags(argv);
  argv = global.argv;
  const before = earlyKekInputs();
  applyGlobalFlags(global.flags);
  // bin/keep.js started scrypt from the environment alone; flags that name another repository or passphrase file start it again.
  if (earlyKekInputs() !== before) startEarlyKek(process.env);
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(USAGE);
    return;
  }
  const cmd = commands[name];
  if (!cmd) throw new KeepError('INVALID_ARGUMENT', `unknown command ${name} (see keep help)`);
  return cmd(rest);
}

const earlyKekInputs = () => JSON.stringify([process.env.KEEP_REPO, process.env.KEEP_PASSWORD, process.env.KEEP_PASSWORD_FILE]);

// An embedded repository's index write that failed for a full disk is reported by the command that made it.
surviveLmdbWriteFailures(() => undefined);

main(process.argv.slice(2)).then(
  (code) => {
    mark('exit');
    process.exit(code ?? EXIT.OK);
  },
  (e: Error) => {
    const msg = (e.message || String(e)).split('\n')[0];
    process.stderr.write(`keep: error: ${msg}\n`);
    if (!(e instanceof KeepError) && process.env.KEEP_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(exitCodeFor(e));
  },
);
