import { KeepError } from '@keep/core';

/**
 * A failed run's coarse class, the only part of its error keepd reads in
 * plaintext (the text can name files and travels sealed): the KeepError
 * code, a command's "exit N" / "signal NAME" (command-job.ts sets
 * `errorClass`), else UNKNOWN.
 */
export function errorClass(e: unknown): string {
  if (e instanceof KeepError) return e.code;
  const own = (e as { errorClass?: unknown } | null)?.errorClass;
  return typeof own === 'string' ? own : 'UNKNOWN';
}

/** An Error that carries its class (errorClass above). */
export function classedError(message: string, errorClass: string): Error {
  return Object.assign(new Error(message), { errorClass });
}
