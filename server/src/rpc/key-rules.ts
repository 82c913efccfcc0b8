import { KeepError, KeyFile, parseKeyFile, Repository } from '@keep/core';
import type { Principal } from '../auth/tokens.js';

/**
 * Who may add which key file (AddKey). A key file is read by every command of
 * every token, so keepd checks it fully (structure, lengths, KDF bounds:
 * core's keyfile-check.ts) and refuses a bad one; and it decides who holds
 * the repository's master key: an agent token adds only the first key (its
 * `keep init`), every later key needs an admin token.
 */
export function admitKeyFile(repo: Repository, text: string, p: Principal): KeyFile {
  let f: KeyFile;
  try {
    f = parseKeyFile(text);
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', `refused: ${(e as Error).message}`);
  }
  // Damaged files count: a repository with only a damaged key is not an empty one an agent may claim.
  const present = [...repo.keyFiles().map((k) => k.id), ...repo.damagedKeyFiles().map((d) => d.id)];
  if (p.role !== 'admin' && present.length > 0) {
    throw new KeepError('PERMISSION_DENIED', 'this repository has a key already: adding another needs an admin token (ask an admin to run `keep key add` or `keep key passwd` with theirs); an agent token adds only the first key, at `keep init`');
  }
  // Append-only: a key file is never overwritten.
  if (present.includes(f.id)) throw new KeepError('ALREADY_EXISTS', `key ${f.id} exists`);
  return f;
}
