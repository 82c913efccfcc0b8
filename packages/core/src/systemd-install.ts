import fs from 'node:fs';
import path from 'node:path';
import { KeepError } from './errors.js';

/*
 * Writing what `keep agent install` and `keepd install` install: systemd
 * units (ours: replaced) beside configs and environment files (the
 * administrator's: never overwritten), and finding the launcher ExecStart runs.
 */

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';

/**
 * The sandbox both units share (after their own file-system settings), and
 * their end: each line says why, for the administrator reading the unit.
 */
export const SHARED_HARDENING = `# kernel tunables, modules and logs, cgroups, the clock and the hostname are none of a backup's business
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# Unix sockets (the status socket, PostgreSQL's, the journal) and TCP (gRPC, metrics); no raw or netlink sockets
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
# no new namespaces, realtime scheduling, setuid or setgid files, personality changes or foreign system calls
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
`;

export const UNIT_END = `# (no MemoryDenyWriteExecute: Node's JIT writes the code it runs)

[Install]
WantedBy=multi-user.target
`;

/** systemd quotes a word with spaces; ours rarely have any. */
export function unitWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `"${w.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** What an install did with one file. */
export interface InstalledFile {
  path: string;
  /** written: new; replaced: a unit from an earlier install; kept: an existing config or environment file left alone */
  action: 'written' | 'replaced' | 'kept' | 'would write' | 'would replace' | 'would keep';
  mode: number;
}

/** A unit file: ours, so an earlier one is replaced (atomically: systemd never reads half a unit). */
export function writeUnitFile(file: string, text: string, dryRun: boolean): InstalledFile {
  const existed = fs.existsSync(file);
  if (dryRun) return { path: file, action: existed ? 'would replace' : 'would write', mode: 0o644 };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode: 0o644 });
  fs.chmodSync(tmp, 0o644); // whatever the umask
  fs.renameSync(tmp, file);
  return { path: file, action: existed ? 'replaced' : 'written', mode: 0o644 };
}

/** A config or environment file: the administrator's once written, so an existing one is never touched. */
export function writeNewFile(file: string, text: string, mode: number, dryRun: boolean): InstalledFile {
  const exists = fs.existsSync(file);
  if (dryRun) return { path: file, action: exists ? 'would keep' : 'would write', mode };
  if (exists) return { path: file, action: 'kept', mode: fs.statSync(file).mode & 0o777 };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  // wx: a file that appeared since the check is kept, not overwritten; the mode is set before any byte is written
  const fd = fs.openSync(file, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, action: 'written', mode };
}

/**
 * The launcher a unit's ExecStart runs: PREFIX/bin/NAME when --prefix is
 * given; else the one running now, found from its script (PREFIX/bin/NAME
 * of a package, or the checkout's NAME.js launcher, which is executable).
 */
export function installedProgram(name: string, prefix: string | undefined, script = process.argv[1]): string {
  if (prefix) {
    const p = path.resolve(prefix, 'bin', name);
    if (!isExecutable(p)) throw new KeepError('INVALID_ARGUMENT', `--prefix ${prefix}: no executable ${p}`);
    return p;
  }
  const real = fs.realpathSync(script);
  for (const p of [path.resolve(path.dirname(real), '..', 'bin', name), real]) if (isExecutable(p)) return p;
  throw new KeepError('INVALID_ARGUMENT', `cannot tell where ${name} is installed (running ${real}): give --prefix DIR (DIR/bin/${name})`);
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** What an install wrote (or would), the unit's text and the steps left to the administrator. */
export interface InstallReport {
  unit: string;
  program: string;
  files: InstalledFile[];
  next: string[];
  text: string;
}

export function formatInstall(r: InstallReport, dryRun: boolean): string {
  const lines = dryRun ? [`dry run: nothing written; ${r.unit} would read:`, '', r.text.trimEnd(), ''] : [];
  lines.push(...r.files.map((f) => `${f.action.padEnd(13)} ${f.path} (mode ${modeText(f.mode)})`), '', 'next:', ...r.next.map((n) => `  ${n}`));
  return lines.join('\n');
}

/** --json's form of a report */
export function installJson(r: InstallReport, dryRun: boolean): object {
  return { dry_run: dryRun, unit: r.unit, program: r.program, files: r.files.map((f) => ({ ...f, mode: modeText(f.mode) })), next: r.next };
}

const modeText = (mode: number) => mode.toString(8).padStart(4, '0');
