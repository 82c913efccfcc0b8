import { KeepError } from './errors.js';

/** Hosts whose traffic never leaves this machine: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Plaintext grpc:// carries the bearer token in clear: allowed to loopback,
 * and elsewhere only when the user says so (--insecure, KEEP_INSECURE=1).
 * Checked before any connection or name lookup is made.
 */
export function requireSafeTransport(scheme: string, host: string, insecure: boolean): void {
  if (scheme !== 'grpc' || insecure || isLoopbackHost(host)) return;
  throw new KeepError('INVALID_ARGUMENT', `refusing plaintext grpc:// to ${host}: the token would cross the network in clear; use grpcs:// with KEEP_CA, or pass --insecure (KEEP_INSECURE=1) to send it anyway`);
}

/** KEEP_INSECURE=1 (or true/yes). */
export function insecureFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.KEEP_INSECURE ?? '');
}
