/** Where the agent looks by default; its own module so the launcher (startup/) can read it without the service's code. */
export const DEFAULT_CONFIG = '/etc/keep/agent.yaml';
export const DEFAULT_STATE_DIR = '/var/lib/keep';
