import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KeepError } from '@keep/core';

/**
 * `keepd tls init`: a private CA and a server certificate signed by it, for a
 * first install. Agents trust the CA with KEEP_CA=<dir>/tls/ca.pem. Uses the
 * system's openssl (Node can parse certificates but not issue them).
 * Keys are EC P-256, written 0600; the CA is valid 10 years, the server
 * certificate 825 days (the browsers' ceiling, a sane default elsewhere too).
 */
export function tlsInit(data: string, hosts: string[]): { dir: string; ca: string; cert: string; key: string } {
  const dir = path.join(data, 'tls');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n: string) => path.join(dir, n);
  if (fs.existsSync(f('server.pem'))) throw new KeepError('ALREADY_EXISTS', `${f('server.pem')} exists; remove ${dir} to issue new certificates`);
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...hosts])];
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  const openssl = (...args: string[]) => {
    try {
      execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new KeepError('INTERNAL', `openssl ${args[0]} failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message}`);
    }
  };
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca-key.pem'));
  openssl('req', '-x509', '-new', '-key', f('ca-key.pem'), '-sha256', '-days', '3650', '-subj', '/CN=Keep private CA', '-out', f('ca.pem'));
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('server-key.pem'));
  openssl('req', '-new', '-key', f('server-key.pem'), '-subj', `/CN=${names[0]}`, '-out', f('server.csr'));
  fs.writeFileSync(f('server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-days', '825', '-sha256', '-extfile', f('server.ext'), '-out', f('server.pem'));
  for (const k of ['ca-key.pem', 'server-key.pem']) fs.chmodSync(f(k), 0o600);
  for (const tmp of ['server.csr', 'server.ext', 'ca.srl']) fs.rmSync(f(tmp), { force: true });
  return { dir, ca: f('ca.pem'), cert: f('server.pem'), key: f('server-key.pem') };
}
