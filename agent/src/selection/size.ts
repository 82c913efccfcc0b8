import { KeepError } from '@keep/core';

const UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** restic's sizes: a whole number of bytes, or with k/K, m/M, g/G, t/T for KiB, MiB, GiB, TiB. */
export function parseSize(value: string, option: string): number {
  const m = /^(\d+)([bkmgt])?$/i.exec(value.trim());
  if (!m) throw new KeepError('INVALID_ARGUMENT', `${option} takes a size such as 2048, 500k or 1M (k, m, g, t: KiB, MiB, GiB, TiB), not ${JSON.stringify(value)}`);
  return Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()];
}
