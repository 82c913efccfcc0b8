import type { Condition } from './evaluate.js';

/** One alert event: a watchdog transition (fire, change, resolve) or a repeat of a long-lasting firing alert. */
export interface AlertEvent {
  /** the condition's identity, `kind/name` (one alert per condition) */
  id: string;
  /** this alert's event counter: with `id`, the Idempotency-Key */
  seq: number;
  kind: Condition['kind'];
  /** the source, replica, task... the condition is about */
  subject: string;
  /** the watchdog state behind it: late, missed, failing, lagging, ... (resolved: the state it recovered to) */
  condition: string;
  severity: Condition['severity'];
  state: 'firing' | 'resolved';
  /** true for a repeat_interval reminder, not a transition */
  repeat: boolean;
  /** keepd's time of the event, and of the start of this firing episode */
  at_ms: number;
  started_ms: number;
  from: string | null;
  detail: Condition['detail'];
}

export const SEVERITY_NAMES = ['ok', 'warning', 'critical'] as const;

export const idempotencyKey = (e: AlertEvent): string => `${e.id}:${e.seq}`;

function summary(e: AlertEvent): string {
  if (e.state === 'resolved') return `RESOLVED ${e.kind} ${e.subject}: ${e.from ?? '-'} -> ${e.condition}`;
  return `${SEVERITY_NAMES[e.severity].toUpperCase()} ${e.kind} ${e.subject} ${e.condition}${e.repeat ? ' (still)' : ''}`;
}

const detailText = (d: AlertEvent['detail']) =>
  Object.entries(d)
    .filter(([, x]) => x !== null)
    .map(([k, x]) => `${k}=${x}`)
    .join(' ');

/** The generic JSON body: the event as keepd records it, times also as ISO strings. */
export function genericPayload(e: AlertEvent): unknown {
  return { ...e, idempotency_key: idempotencyKey(e), severity_name: SEVERITY_NAMES[e.severity], at: new Date(e.at_ms).toISOString(), started_at: new Date(e.started_ms).toISOString(), summary: summary(e) };
}

/** Slack's incoming-webhook shape (also Mattermost's, Rocket.Chat's). */
export function slackPayload(e: AlertEvent): unknown {
  const icon = e.state === 'resolved' ? ':white_check_mark:' : e.severity === 2 ? ':red_circle:' : ':warning:';
  return { text: `${icon} keep: ${summary(e)} at ${new Date(e.at_ms).toISOString()}${Object.keys(e.detail).length ? ` (${detailText(e.detail)})` : ''}` };
}

/**
 * Alertmanager's POST /api/v2/alerts body: labels identify the alert (they
 * stay the same from firing to resolved, so Alertmanager sees one alert);
 * a resolved one carries endsAt.
 */
export function alertmanagerPayload(e: AlertEvent): unknown {
  const alert: Record<string, unknown> = {
    labels: { alertname: `Keep${e.kind[0].toUpperCase()}${e.kind.slice(1)}`, kind: e.kind, subject: e.subject, service: 'keepd' },
    annotations: { summary: summary(e), condition: e.condition, severity: SEVERITY_NAMES[Math.max(e.severity, 1)], detail: detailText(e.detail) },
    startsAt: new Date(e.started_ms).toISOString(),
  };
  if (e.state === 'resolved') alert.endsAt = new Date(e.at_ms).toISOString();
  return [alert];
}

export const PAYLOADS = { webhook: genericPayload, slack: slackPayload, alertmanager: alertmanagerPayload } as const;
