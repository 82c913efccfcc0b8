import { KeepError } from '@keep/core';

/** HOST:PORT (a bracketed IPv6 host too) of --listen and --metrics; `what` names the option in the error. */
export function splitHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) throw new KeepError('INVALID_ARGUMENT', `${what} takes HOST:PORT, not ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
};

/** A failed listen on `hostPort` for option `what` (--listen, --metrics): one line that names both, without Node's "listen EADDRINUSE: ..." echo. */
export function listenError(what: string, hostPort: string, err: NodeJS.ErrnoException): KeepError {
  const why = (err.code && LISTEN_ERRORS[err.code]) || err.message;
  return new KeepError('UNAVAILABLE', `cannot listen for ${what} on ${hostPort}: ${why}`);
}
