import { KeepError } from './errors.js';
import type { RepoKeys } from './keys/subkeys.js';

/*
 * A repository's chunking parameters (config.json), apart from the chunkers
 * that run them (chunker.ts: fastcdc-wasm; gear-cdc.ts: the keyed gear table),
 * so that both can import them without importing each other.
 */

/** Content-defined chunking parameters, fixed per repository (recorded in its config). */
export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
  /**
   * Cut with a gear table derived from the master key (gear-cdc.ts), so that
   * no one without the key can tell where a known file is cut: set for every
   * repository made since; older ones (absent) keep fastcdc-wasm's public table.
   */
  keyed?: boolean;
}

/** ChunkerParams as a chunker runs them: a keyed repository's come with the gear table. */
export interface Chunking extends ChunkerParams {
  gear?: Int32Array;
}

/** How `params` (a repository's config) are run by a holder of its keys. */
export function chunkingFor(params: ChunkerParams, keys: RepoKeys): Chunking {
  return params.keyed ? { ...params, gear: keys.chunkerGear } : params;
}

/**
 * 128 KiB / 512 KiB / 2 MiB. Measured on the bench tree with the public table (generation 1, then in-place edits as
 * generation 2; a keyed table's cut points, and so these sizes, vary by ~1 MB from key to key): an edit
 * costs about one average chunk at each of its ends, so halving the average from 1 MiB stored 0.9 MB (1.1%) less
 * after generation 2, for 0.46 MB (0.6%) more at generation 1, where text compresses in smaller pieces; 256 KiB
 * lost more to compression than it gained. Existing repositories keep the sizes in their config.
 */
export const DEFAULT_CHUNKER: ChunkerParams = { min: 128 * 1024, avg: 512 * 1024, max: 2 * 1024 * 1024 };

export function validateChunkerParams(p: ChunkerParams): ChunkerParams {
  // fastcdc asserts min >= 64, avg >= 256, max >= 1024: a smaller size would pass here and then crash every backup.
  const ok =
    (p.keyed === undefined || typeof p.keyed === 'boolean') &&
    Number.isInteger(p.min) && Number.isInteger(p.avg) && Number.isInteger(p.max) && 64 <= p.min && p.min <= p.avg && 256 <= p.avg && p.avg <= p.max && 1024 <= p.max && p.max <= 64 * 1024 * 1024;
  if (!ok) throw new KeepError('INVALID_ARGUMENT', `chunker sizes must satisfy 64 <= min <= avg <= max <= 64 MiB with avg >= 256 and max >= 1024, got ${JSON.stringify(p)}`);
  return p;
}

/** --chunk-min/avg/max in bytes (K, M suffixes allowed); recorded in config.json, fixed for the repository's life. */
export function parseChunkerSizes(min?: string, avg?: string, max?: string): ChunkerParams | undefined {
  if (min === undefined && avg === undefined && max === undefined) return undefined;
  const size = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const m = /^(\d+)([KkMm]?)i?[Bb]?$/.exec(v);
    if (!m) throw new KeepError('INVALID_ARGUMENT', `${name} takes a size like 512K or 2M, not ${v}`);
    return Number(m[1]) * (m[2] ? (m[2].toUpperCase() === 'K' ? 1024 : 1024 * 1024) : 1);
  };
  return validateChunkerParams({ min: size(min, DEFAULT_CHUNKER.min, '--chunk-min'), avg: size(avg, DEFAULT_CHUNKER.avg, '--chunk-avg'), max: size(max, DEFAULT_CHUNKER.max, '--chunk-max') });
}
