import os from 'node:os';
import path from 'node:path';
import { RepoKeys, sealMeta } from '@keep/core';

/** The backing-up user's name, as restic records it ('' when the system has no entry for the uid). */
function username(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? '';
  }
}

/** The paths a snapshot records: those given, absolute like restic's; a stream: its stored name. */
export function recordedPaths(opts: { paths?: string[]; stdin?: { name: string } }): string[] {
  return opts.stdin ? [opts.stdin.name] : (opts.paths ?? []).map((p) => path.resolve(p));
}

/**
 * What a snapshot record says about its backup beyond the keyless fields:
 * the paths and the user, sealed (core snapshot/sealed-meta.ts), plus the
 * keyed path-set id keepd groups by.
 */
export function recordedMeta(keys: RepoKeys, paths: string[]): { sealed_meta: string; paths_group?: string } {
  return sealMeta(keys, { paths, username: username() });
}
