import { KeepError } from '@keep/core';

/** A path's bytes (a target path, or one in the snapshot) as text, for a message or a status line. */
export function pathText(p: Uint8Array): string {
  return Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString();
}

/** An error about one file's content, naming the file (once): a restore that stops says which file it left out. */
export function namedError(p: Uint8Array, e: unknown): unknown {
  const where = `${pathText(p)}: `;
  if (!(e instanceof Error) || e.message.startsWith(where)) return e;
  if (e instanceof KeepError) return new KeepError(e.code, where + e.message);
  e.message = where + e.message;
  return e;
}
