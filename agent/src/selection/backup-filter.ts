import fs from 'node:fs';
import path from 'node:path';
import { PatternList } from './pattern.js';

/** What a backup leaves out: the rules from restic's backup flags. */
export interface BackupRules {
  /** --exclude and --exclude-file patterns, then --iexclude and --iexclude-file ones: each list decides on its own */
  exclude: PatternList;
  iexclude: PatternList;
  /** --exclude-if-present NAME[:HEADER] (and --exclude-caches): a directory holding NAME keeps only NAME */
  ifPresent: { name: string; header?: Buffer }[];
  /** --exclude-larger-than: files above this many bytes */
  largerThan?: number;
  /** --one-file-system: stay on the device of the named path each entry lies under */
  oneFileSystem: boolean;
}

/** The tag https://bford.info/cachedir/ defines; --exclude-caches is --exclude-if-present with it. */
export const CACHEDIR_TAG = { name: 'CACHEDIR.TAG', header: Buffer.from('Signature: 8a477f597d28d172789f06886806bc55') };

/**
 * Decides, for each entry the backup walk finds, whether it is selected out.
 * Such an entry is simply absent from the snapshot: no warning, no exit code.
 */
export class BackupFilter {
  /** directories already looked at for the tag files */
  private readonly tagged = new Map<string, boolean>();
  /** the named paths (absolute) and their devices, longest first */
  private readonly roots: { path: string; dev: bigint }[] = [];

  constructor(
    private readonly rules: BackupRules,
    namedPaths: string[],
  ) {
    if (rules.oneFileSystem) {
      for (const p of namedPaths) {
        const abs = path.resolve(p);
        const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
        if (st) this.roots.push({ path: abs, dev: st.dev });
      }
      this.roots.sort((a, b) => b.path.length - a.path.length);
    }
  }

  /** True when the entry at absolute path `full` (found by lstat as `st`) is left out. */
  excludes(full: Buffer, st: fs.BigIntStats): boolean {
    const p = full.toString();
    const r = this.rules;
    if (!r.exclude.empty && r.exclude.test(p).matched) return true;
    if (!r.iexclude.empty && r.iexclude.test(p).matched) return true;
    if (r.largerThan !== undefined && st.isFile() && st.size > BigInt(r.largerThan)) return true;
    if (r.ifPresent.length && this.inTaggedDir(p)) return true;
    return r.oneFileSystem && this.onOtherDevice(p, st);
  }

  /** In a directory holding a tag file (with its header, when one is asked for); the tag file itself stays. */
  private inTaggedDir(p: string): boolean {
    const name = path.posix.basename(p);
    if (this.rules.ifPresent.some((t) => t.name === name)) return false;
    const dir = path.posix.dirname(p);
    let tagged = this.tagged.get(dir);
    if (tagged === undefined) {
      tagged = this.rules.ifPresent.some((t) => hasTag(path.posix.join(dir, t.name), t.header));
      this.tagged.set(dir, tagged);
    }
    return tagged;
  }

  /**
   * On another device than the named path it lies under. A directory whose
   * parent is on that path's device is a mount point: kept, as restic keeps
   * it, and what is mounted there is left out (its entries are on the other device).
   */
  private onOtherDevice(p: string, st: fs.BigIntStats): boolean {
    const root = this.roots.find((r) => p === r.path || p.startsWith(r.path === '/' ? '/' : `${r.path}/`));
    if (!root || st.dev === root.dev) return false;
    if (!st.isDirectory()) return true;
    const parent = fs.lstatSync(path.posix.dirname(p), { bigint: true, throwIfNoEntry: false });
    return parent?.dev !== root.dev;
  }
}

/** `file` exists and starts with `header` (any content when none is asked for). */
function hasTag(file: string, header: Buffer | undefined): boolean {
  if (!header) return fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined;
  let fd: number;
  try {
    // (non-blocking: a FIFO by that name must not stall the walk)
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(header.length);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return n === header.length && buf.equals(header);
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}
