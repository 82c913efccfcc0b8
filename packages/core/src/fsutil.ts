import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Write a file so that a crash leaves either the old or the new content: tmp, fsync, rename, fsync dir. */
export function atomicWrite(file: string, data: string | Buffer, mode = 0o666): void {
  const tmp = `${file}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Make renames and unlinks in `dir` durable. */
export function fsyncDir(dir: string): void {
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/** 32 hex digits of randomness: snapshot ids. */
export function randomId(): string {
  return crypto.randomBytes(16).toString('hex');
}
