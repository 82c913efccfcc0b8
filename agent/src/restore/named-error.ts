import { KeepError } from '@keep/core';

/** An error about one file's content, naming the file (once): a restore that stops says which file it left out. */
export function namedError(p: Uint8Array, e: unknown): unknown {
  const where = `${Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString()}: `;
  if (!(e instanceof Error) || e.message.startsWith(where)) return e;
  if (e instanceof KeepError) return new KeepError(e.code, where + e.message);
  e.message = where + e.message;
  return e;
}
