/** One entry of an archive dump writes (tar-writer.ts, zip-writer.ts). */
export type ArchiveType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface ArchiveEntry {
  /** relative path in the archive (raw bytes); a directory's without its trailing `/` */
  path: Buffer;
  type: ArchiveType;
  mode: number;
  uid: number;
  gid: number;
  mtime: [number, number];
  /** file: content length */
  size?: number;
  /** symlink: target; hardlink: the archive path of the first name */
  link?: Buffer;
}

export interface ArchiveWriter {
  /** false: the format has no hardlinks, so each further name of an inode carries the content again */
  readonly hardlinks: boolean;
  /** an entry, then its content (a file's: exactly `entry.size` bytes) */
  add(entry: ArchiveEntry, content?: AsyncIterable<Buffer>): Promise<void>;
  /** what ends the archive */
  finish(): Promise<void>;
}
