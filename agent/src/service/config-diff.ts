import type { AgentConfig } from './config.js';

export interface ConfigChanges {
  added: string[];
  removed: string[];
  changed: string[];
  /** settings a reload cannot change (the key is held, the socket is bound): they wait for a restart */
  needRestart: string[];
}

/** What a reload changes, by job name; a job changed when any of its keys did. */
export function diffConfig(before: AgentConfig, after: AgentConfig): ConfigChanges {
  const old = new Map(before.jobs.map((j) => [j.name, JSON.stringify(j)]));
  const now = new Map(after.jobs.map((j) => [j.name, JSON.stringify(j)]));
  const needRestart = (['repository', 'host', 'stateDir', 'socket'] as const).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return {
    added: [...now.keys()].filter((n) => !old.has(n)),
    removed: [...old.keys()].filter((n) => !now.has(n)),
    changed: [...now.keys()].filter((n) => old.has(n) && old.get(n) !== now.get(n)),
    needRestart,
  };
}
