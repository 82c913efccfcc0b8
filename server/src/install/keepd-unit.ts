import { SHARED_HARDENING, UNIT_END, unitWord } from '@keep/core';

/**
 * keepd.service, the systemd unit `keepd install` writes. Stricter than the
 * agent's: keepd reads and writes its data directory only, so it sees no
 * home directories and holds no capability at all.
 */
export interface KeepdUnitOptions {
  /** the keepd launcher ExecStart runs (systemd-analyze verify checks it exists) */
  program: string;
  data: string;
  listen: string;
  user: string;
  /** DIR/tls's certificate and key when `keepd tls init` made them */
  tls?: { cert: string; key: string };
}

export const KEEPD_UNIT_NAME = 'keepd.service';
/** connections, packs and LMDB's files at once: well above --max-connections' default */
const OPEN_FILES = 65536;

export function keepdUnit(o: KeepdUnitOptions): string {
  const args = [o.program, 'serve', '--data', o.data, '--listen', o.listen, ...(o.tls ? ['--tls-cert', o.tls.cert, '--tls-key', o.tls.key] : [])];
  // under /var/lib systemd creates the data directory and hands it to the user; elsewhere it must exist, owned by the user
  const stateDir = o.data.startsWith('/var/lib/') ? o.data.slice('/var/lib/'.length) : undefined;
  const state = stateDir
    ? `# ${o.data}: created by systemd if missing, owned by ${o.user}, owner only
StateDirectory=${stateDir}
StateDirectoryMode=0700
`
    : '';
  return `# ${KEEPD_UNIT_NAME}: written by \`keepd install\`; running it again replaces this file.
# Local changes belong in a drop-in: systemctl edit keepd.service
[Unit]
Description=Keep repository server (${o.data})
Wants=network-online.target
After=network-online.target

[Service]
# keepd serve stays in the foreground and logs JSON lines on stdout
Type=simple
${o.tls ? '' : `# TLS: keepd tls init --data ${o.data}, then keepd install again adds --tls-cert and --tls-key\n`}ExecStart=${args.map(unitWord).join(' ')}
# SIGTERM: keepd stops accepting, finishes what is in flight and closes the repository (exit 0)
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=5s
# an unprivileged user owns the data (useradd --system keep)
User=${o.user}
${state}UMask=0077
# one descriptor per connection and per open pack
LimitNOFILE=${OPEN_FILES}
StandardOutput=journal
StandardError=journal
SyslogIdentifier=keepd

# Hardening. keepd writes its data directory and nothing else.
# no setuid programs, no gaining privileges
NoNewPrivileges=yes
# the whole file system read-only but the data directory
ProtectSystem=strict
ReadWritePaths=${unitWord(o.data)}
# no home directory is any of keepd's business
ProtectHome=yes
# a private /tmp, and /dev with only the pseudo devices (null, zero, random)
PrivateTmp=yes
PrivateDevices=yes
${SHARED_HARDENING}# no capabilities: the port is above 1024 and the files are the user's own
CapabilityBoundingSet=
AmbientCapabilities=
${UNIT_END}`;
}
