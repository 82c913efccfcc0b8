import { KeepError } from '@keep/core';

/** HOST:PORT (a bracketed IPv6 host too) of --listen and --metrics; `what` names the option in the error. */
export function splitHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) throw new KeepError('INVALID_ARGUMENT', `${what} takes HOST:PORT, not ${s}`);
  return { host: m[1], port: Number(m[2]) };
}
