import crypto from 'node:crypto';
import { ChunkerParams, DEFAULT_CHUNKER, validateChunkerParams } from './chunker-params.js';
import { KeepError } from './errors.js';

/**
 * config.json — the repository's plaintext configuration. Holds no secret:
 * the server and replicas read it. Chunker sizes are fixed at init because
 * changing them would stop new chunks from deduplicating against old ones.
 */
export interface RepoConfig {
  format: 'keep-repository';
  version: 1;
  id: string;
  created: string;
  chunker: ChunkerParams;
}

/** A new repository's config: its chunker is keyed (chunker.ts) unless `chunker` says otherwise. */
export function newRepoConfig(created: Date, chunker: ChunkerParams = DEFAULT_CHUNKER): RepoConfig {
  return {
    format: 'keep-repository',
    version: 1,
    id: crypto.randomBytes(16).toString('hex'),
    created: created.toISOString(),
    chunker: validateChunkerParams({ keyed: true, ...chunker }),
  };
}

export function parseRepoConfig(text: string, where: string): RepoConfig {
  let c: RepoConfig;
  try {
    c = JSON.parse(text);
  } catch {
    throw new KeepError('CORRUPT', `${where} is not valid JSON`);
  }
  if (c.format !== 'keep-repository') throw new KeepError('NOT_A_REPOSITORY', `${where} is not a Keep repository config`);
  if (c.version !== 1) throw new KeepError('NOT_A_REPOSITORY', `${where} has repository version ${c.version}; this Keep reads version 1`);
  validateChunkerParams(c.chunker);
  return c;
}
