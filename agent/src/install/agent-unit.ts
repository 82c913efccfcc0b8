import { SHARED_HARDENING, UNIT_END, unitWord } from '@keep/core';
import { DEFAULT_STATE_DIR } from '../service/config.js';

/**
 * keep-agent.service, the systemd unit `keep agent install` writes. Every
 * setting carries a comment saying why it is there: the unit is the file an
 * administrator reads when the agent cannot reach something.
 */
export interface AgentUnitOptions {
  /** the keep launcher ExecStart runs (systemd-analyze verify checks it exists) */
  program: string;
  config: string;
  envFile: string;
  graceMs: number;
  user?: string;
  /** directories besides the state and cache directories the agent writes: an embedded repository's */
  writable: string[];
}

export const AGENT_UNIT_NAME = 'keep-agent.service';
export const AGENT_STATE_DIR = DEFAULT_STATE_DIR;
export const AGENT_CACHE_DIR = '/var/cache/keep';
/** the status socket's directory (RuntimeDirectory=keep) */
export const AGENT_RUNTIME_DIR = '/run/keep';

/** time after --grace for the aborted job to unwind and the process to exit before systemd's SIGKILL */
const STOP_MARGIN_S = 30;

export function agentUnit(o: AgentUnitOptions): string {
  const graceS = Math.ceil(o.graceMs / 1000);
  const exec = [o.program, 'agent', 'run', '--config', o.config, '--grace', `${graceS}s`].map(unitWord).join(' ');
  const user = o.user
    ? `# the agent runs as ${o.user}; systemd creates the state, cache and runtime directories owned by it
User=${o.user}
# ...and lets it read every file, as root would, without any other privilege (drop to back up only what ${o.user} may read)
AmbientCapabilities=CAP_DAC_READ_SEARCH
`
    : '';
  return `# ${AGENT_UNIT_NAME}: written by \`keep agent install\`; running it again replaces this file
# (never the config or the environment file). Local changes belong in a drop-in:
# systemctl edit keep-agent.service
[Unit]
Description=Keep backup agent (the jobs of ${o.config})
# backups to a keepd need the network; an embedded repository does not mind waiting for it
Wants=network-online.target
After=network-online.target

[Service]
# keep agent run stays in the foreground and logs JSON lines on stdout
Type=simple
ExecStart=${exec}
# SIGHUP reloads the config and logs what changed (an invalid config keeps the old one)
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM lets the running job finish; past --grace (${graceS}s) it is aborted and commits nothing
KillSignal=SIGTERM
# SIGTERM to the agent only: it stops its own command jobs' children (pg_dump); leftovers get SIGKILL
KillMode=mixed
# --grace plus ${STOP_MARGIN_S}s to unwind, before systemd sends SIGKILL
TimeoutStopSec=${graceS + STOP_MARGIN_S}
# a crash or a failed start is retried; a run killed mid-job is retried by the agent on start
Restart=on-failure
RestartSec=10s
# secrets by reference only (KEEP_PASSWORD_FILE, KEEP_TOKEN_FILE): the file is mode 0600
EnvironmentFile=${o.envFile}
# the unchanged-files cache and the remembered key parameters, in CacheDirectory (not ~/.cache, which is read-only here)
Environment=KEEP_CACHE_DIR=${AGENT_CACHE_DIR}
${user}# ${AGENT_STATE_DIR}: the state file (last runs); owner only
StateDirectory=keep
StateDirectoryMode=0700
CacheDirectory=keep
CacheDirectoryMode=0700
# ${AGENT_RUNTIME_DIR}: the status socket (keep agent status); owner only
RuntimeDirectory=keep
RuntimeDirectoryMode=0700
UMask=0077
# the JSON log goes to the journal: journalctl -u keep-agent -o cat
StandardOutput=journal
StandardError=journal
SyslogIdentifier=keep-agent

# Hardening. The agent reads the backed-up tree and writes only its own directories.
# no setuid programs, no gaining privileges (a command job cannot sudo)
NoNewPrivileges=yes
# /usr, /boot, /etc and the rest read-only; the agent writes its state and cache only
ProtectSystem=strict
ReadWritePaths=${[AGENT_STATE_DIR, AGENT_CACHE_DIR, ...o.writable].map(unitWord).join(' ')}
# files jobs read /home (and /root, /run/user); nothing there is written
ProtectHome=read-only
# a private /tmp: nothing the agent or its commands leave there is seen by others (a files job sees an empty /tmp)
PrivateTmp=yes
${SHARED_HARDENING}# root reads every file (CAP_DAC_READ_SEARCH) but may not write others' files, change owners,
# switch users or load modules: every other capability is dropped
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
${UNIT_END}`;
}
