import { INDEX_SEGMENT_SUFFIX, REPO_DIRS, REPO_FILES, STORE_OBJECTS } from '../formats.js';

/**
 * The object keys of a repository's files (formats.ts): in a LocalDirectoryStore
 * each key is the path the repository has always used (pack/writer.ts packPath,
 * snapshot/store.ts, keys/key-store.ts), in a bucket the same names under the prefix.
 */
export const repoKeys = {
  config: REPO_FILES.config,
  writerLease: STORE_OBJECTS.writerLease,
  packsPrefix: `${REPO_DIRS.packs}/`,
  snapshotsPrefix: `${REPO_DIRS.snapshots}/`,
  keysPrefix: `${REPO_DIRS.keys}/`,
  indexPrefix: `${REPO_DIRS.index}/`,
  pack: (packId: string) => `${REPO_DIRS.packs}/${packId.slice(0, 2)}/${packId}.pack`,
  snapshot: (snapshotId: string) => `${REPO_DIRS.snapshots}/${snapshotId}.json`,
  keyFile: (keyId: string) => `${REPO_DIRS.keys}/${keyId}.json`,
  indexSegment: (name: string) => `${REPO_DIRS.index}/${name}${INDEX_SEGMENT_SUFFIX}`,
} as const;
