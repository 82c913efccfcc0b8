import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitCodeFor, KeepError } from './errors.js';
import { FORMAT_VERSIONS, OLD_BLOB_TABLES } from './formats.js';

/*
 * What keep and keepd say about themselves: their usage, their version
 * (restic's `version`), and how a command that failed ends (restic's exit_error).
 */

export interface VersionReport {
  program: string;
  version: string;
  /** what this build writes */
  formats: typeof FORMAT_VERSIONS;
  /** older index tables it still reads (migrated on open) */
  reads_index: string[];
  node: string;
  platform: string;
  arch: string;
}

/** The version of the package holding `moduleUrl` (the nearest package.json above it: bundled or not). */
function packageVersion(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string };
      if (pkg.version) return pkg.version;
    }
    const up = path.dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

export function versionReport(program: string, moduleUrl: string): VersionReport {
  return {
    program,
    version: packageVersion(moduleUrl),
    formats: FORMAT_VERSIONS,
    reads_index: [...OLD_BLOB_TABLES, FORMAT_VERSIONS.index],
    node: process.version,
    platform: process.platform,
    arch: process.arch,
  };
}

/** restic's one line, then the formats: "keep 0.1.0 compiled with node v20.x on linux/x64". */
export function formatVersionReport(r: VersionReport): string {
  const f = r.formats;
  return (
    `${r.program} ${r.version} running on node ${r.node} on ${r.platform}/${r.arch}\n` +
    `repository formats: config ${f.config}, key ${f.key}, pack ${f.pack}, blob ${f.blob}, index ${f.index} (reads index ${r.reads_index.join(', ')})`
  );
}

/**
 * End a command that failed: one line on stderr ("keep: error: ..."), or
 * under --json restic's object {"message_type":"exit_error","code":N,"message":"..."}.
 * Returns the exit code.
 */
export function reportExitError(program: string, e: unknown, json: boolean): number {
  const code = exitCodeFor(e);
  const message = ((e as Error)?.message || String(e)).split('\n')[0];
  if (json) process.stderr.write(JSON.stringify({ message_type: 'exit_error', code, message }) + '\n');
  else process.stderr.write(`${program}: error: ${message}\n`);
  return code;
}

/**
 * The usage a command line asks for, from `usage` (by command path: "backup",
 * "key add"; "" the overview), or undefined when it asks for none: `COMMAND
 * ... --help|-h` (before any `--`), `help [COMMAND...]`, or nothing at all.
 * The most specific entry wins; an unknown command is a usage error.
 */
export function helpFor(program: string, usage: Record<string, string>, argv: string[]): string | undefined {
  const end = argv.indexOf('--');
  const args = end < 0 ? argv : argv.slice(0, end);
  const asked = args.includes('--help') || args.includes('-h');
  if (args.length > 0 && args[0] !== 'help' && !asked) return undefined;
  // Option values stay among the words: a command path is looked up first, the rest ignored.
  let words = args.filter((a) => !a.startsWith('-'));
  if (words[0] === 'help') words = words.length === 1 && asked ? ['help'] : words.slice(1);
  const [command = '', sub] = words;
  if (sub !== undefined && usage[`${command} ${sub}`] !== undefined) return usage[`${command} ${sub}`];
  if (usage[command] === undefined) throw new KeepError('INVALID_ARGUMENT', `unknown command ${command} (see ${program} help)`);
  return usage[command];
}
