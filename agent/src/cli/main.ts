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


const USAGE = `keep — deduplicating, end-to-end encrypted backups

usage: keep COMMAND [options]   (KEEP_REPO, KEEP_PASSWORD / KEEP_PASSWORD_FILE from the environment)

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
  key add|list|remove ID|passwd   manage passphrases (new one from KEEP_NEW_PASSWORD)
  pg backup|wal-push|wal-fetch|restore|config|info   PostgreSQL point-in-time recovery (keep pg help)

every command takes --json (one JSON document on stdout); --insecure (KEEP_INSECURE=1) allows plaintext grpc:// to a host that is not loopback

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
  // --insecure, anywhere on the line: plaintext grpc:// to a host that is not loopback (as KEEP_INSECURE=1).
  if (argv.includes('--insecure')) {
    process.env.KEEP_INSECURE = '1';
    argv = argv.filter((a) => a !== '--insecure');
  }
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(USAGE);
    return;
  }
  const cmd = commands[name];
  if (!cmd) throw new KeepError('INVALID_ARGUMENT', `unknown command ${name} (see keep help)`);
  return cmd(rest);
}

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
