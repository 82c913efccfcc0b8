import { EXIT, exitOnInterrupt, formatVersionReport, helpFor, KeepError, reportExitError, surviveLmdbWriteFailures, versionReport } from '@keep/core';
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

/**
 * A command returns its exit code when it finished with something to report (backup: EXIT.PARTIAL).
 * Each command's module loads when it runs (esbuild turns these import()s into lazy parts of the one
 * bundle): `keep version` or `keep snapshots` does not evaluate the service's config parsing (yaml,
 * valibot, croner), the drills or the admin client.
 */
type Command = (argv: string[]) => Promise<void | number>;
const commands: Record<string, () => Promise<Command>> = {
  admin: async () => (await import('../commands/admin.js')).adminCommand,
  agent: async () => (await import('../commands/agent.js')).agentCommand,
  backup: async () => (await import('../commands/backup.js')).backupCommand,
  cat: async () => (await import('../commands/cat.js')).catCommand,
  check: async () => (await import('../commands/check.js')).checkCommand,
  diff: async () => (await import('../commands/diff.js')).diffCommand,
  dump: async () => (await import('../commands/dump.js')).dumpCommand,
  find: async () => (await import('../commands/find.js')).findCommand,
  forget: async () => (await import('../commands/forget.js')).forgetCommand,
  init: async () => (await import('../commands/init.js')).initCommand,
  key: async () => (await import('../commands/key.js')).keyCommand,
  ls: async () => (await import('../commands/ls.js')).lsCommand,
  pg: async () => (await import('../commands/pg.js')).pgCommand,
  version: async () => versionCommand,
  restore: async () => (await import('../commands/restore.js')).restoreCommand,
  drill: async () => (await import('../commands/drill.js')).drillCommand,
  snapshots: async () => (await import('../commands/snapshots.js')).snapshotsCommand,
  stats: async () => (await import('../commands/stats.js')).statsCommand,
  tag: async () => (await import('../commands/tag.js')).tagCommand,
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
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) throw new KeepError('INVALID_ARGUMENT', `unknown command ${name} (see keep help)`);
  return (await load())(rest);
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
