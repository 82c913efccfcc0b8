import { KeepError } from '@keep/core';
import { issueError, readConfigSource } from '@keep/core/config';
import * as v from 'valibot';
import { KeepdConfigInput, keepdConfigSchema } from './config-schema.js';

export const DEFAULT_KEEPD_CONFIG = '/etc/keep/keepd.yaml';

/** A watchdog interval when the file names none (the seeds ask for 5 s lag monitoring). */
export const DEFAULT_WATCH_INTERVAL_MS = 5000;

export interface KeepdConfig extends KeepdConfigInput {
  file?: string;
}

/** Each problem `file:line: key.path: message`; exit 2 from check-config. */
export class KeepdConfigError extends KeepError {
  constructor(readonly problems: string[]) {
    super('INVALID_ARGUMENT', problems.join('\n'));
  }
}

/** Read and validate keepd.yaml; every problem thrown together. */
export function loadKeepdConfig(file: string): KeepdConfig {
  const { src, problems: unread } = readConfigSource(file);
  if (!src) throw new KeepdConfigError(unread);
  const parsed = v.safeParse(keepdConfigSchema, src.doc.toJS() ?? {});
  if (!parsed.success) throw new KeepdConfigError(parsed.issues.map((i) => issueError(src, i)));
  const c = parsed.output;
  const problems: string[] = [];
  (c.sources ?? []).forEach((s, i) => {
    if (s.rpo !== undefined && s.interval !== undefined) problems.push(src.error(['sources', i, 'interval'], 'give rpo or interval, not both'));
    if (s.retention === 'tier' && !s.tier) problems.push(src.error(['sources', i, 'retention'], '"tier" retention needs the tier key'));
  });
  const seen = new Set<string>();
  (c.alerts?.receivers ?? []).forEach((r, i) => {
    if (seen.has(r.name)) problems.push(src.error(['alerts', 'receivers', i, 'name'], `receiver ${r.name} is named twice`));
    seen.add(r.name);
  });
  // alerts.webhooks: [{url}] is the short form of receivers of type webhook
  const hooks = (c.alerts?.webhooks ?? []).map((w, i) => ({ name: `webhook-${i + 1}`, type: 'webhook' as const, ...w }));
  hooks.forEach((h, i) => {
    if (seen.has(h.name)) problems.push(src.error(['alerts', 'webhooks', i], `its name ${h.name} is a receiver's too: rename that receiver`));
  });
  if (problems.length) throw new KeepdConfigError(problems);
  const alerts = c.alerts && { ...c.alerts, receivers: [...c.alerts.receivers, ...hooks], webhooks: undefined };
  return { ...c, alerts, file };
}

/** No file: defaults only (the watchdog still runs, on tiers and observed intervals). */
export const EMPTY_CONFIG: KeepdConfig = {};
