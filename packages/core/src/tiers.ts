import { KeepError } from './errors.js';

/** The service tiers (the design brief's tier table): recovery objectives and the compression each tier uses by default. */
export const TIERS = {
  critical: { rto_s: 15 * 60, rpo_s: 60, compression: 'low' },
  high: { rto_s: 60 * 60, rpo_s: 5 * 60, compression: 'medium' },
  standard: { rto_s: 2 * 3600, rpo_s: 15 * 60, compression: 'high' },
  lower: { rto_s: 24 * 3600, rpo_s: 3600, compression: 'high' },
} as const;

export type Tier = keyof typeof TIERS;

export function parseTier(value: string): Tier {
  if (value in TIERS) return value as Tier;
  throw new KeepError('INVALID_ARGUMENT', `--tier must be critical, high, standard or lower, not ${value}`);
}
