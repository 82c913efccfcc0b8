import fs from 'node:fs';
import path from 'node:path';
import { InstallReport, installedProgram, writeNewFile, writeUnitFile } from '@keep/core';
import { loadConfig } from '../service/config.js';
import { agentEnvFile } from './env-file.js';
import { AGENT_CACHE_DIR, AGENT_RUNTIME_DIR, AGENT_STATE_DIR, AGENT_UNIT_NAME, agentUnit } from './agent-unit.js';
import { exampleAgentConfig } from './example-config.js';

export interface AgentInstallOptions {
  config: string;
  unitDir: string;
  prefix?: string;
  user?: string;
  graceMs: number;
  dryRun: boolean;
}

/** `keep agent install`: the unit (replaced), an example config and the environment file (each only if missing). */
export function installAgent(o: AgentInstallOptions): InstallReport {
  const config = path.resolve(o.config);
  const envFile = path.join(path.dirname(config), 'agent.env');
  const program = installedProgram('keep', o.prefix);
  const unitFile = path.join(o.unitDir, AGENT_UNIT_NAME);
  const text = agentUnit({ program, config, envFile, graceMs: o.graceMs, user: o.user, writable: writableOf(config) });
  const files = [
    writeUnitFile(unitFile, text, o.dryRun),
    writeNewFile(config, exampleAgentConfig(envFile), 0o644, o.dryRun),
    writeNewFile(envFile, agentEnvFile(path.dirname(config)), 0o600, o.dryRun),
  ];
  const next = [
    `edit ${config}, then: ${program} agent check-config --config ${config}`,
    `put the passphrase in the file KEEP_PASSWORD_FILE names in ${envFile} (chmod 600${o.user ? `, readable by ${o.user}` : ''})`,
    `systemctl daemon-reload && systemctl enable --now ${AGENT_UNIT_NAME}`,
    `journalctl -u keep-agent -o cat -f; ${program} agent status --config ${config}`,
  ];
  return { unit: unitFile, program, files, next, text };
}

/**
 * Directories an existing config makes the agent write besides the unit's
 * own: an embedded repository, a state directory or socket elsewhere. An
 * example config (or none yet) needs none.
 */
function writableOf(config: string): string[] {
  if (!fs.existsSync(config)) return [];
  let loaded;
  try {
    loaded = loadConfig(config).config;
  } catch {
    return []; // check-config names the problems; the unit is still written
  }
  const own = [AGENT_STATE_DIR, AGENT_CACHE_DIR, AGENT_RUNTIME_DIR];
  const dirs = [loaded.stateDir, path.dirname(loaded.socket)];
  if (!/^grpcs?:\/\//.test(loaded.repository.location)) dirs.push(loaded.repository.location);
  const resolved = dirs.map((d) => path.resolve(d));
  return [...new Set(resolved)].filter((d) => !own.some((o) => d === o || d.startsWith(`${o}/`)));
}
