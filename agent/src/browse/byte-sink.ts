import { once } from 'node:events';
import fs from 'node:fs';
import { KeepError } from '@keep/core';

/** Where dump writes: stdout or a file, waiting whenever the stream's buffer is full. */
export interface ByteSink {
  write(b: Buffer): Promise<void>;
  /** everything written is handed to the OS (a file: flushed and closed) */
  close(): Promise<void>;
}

export function streamSink(stream: NodeJS.WritableStream, onClose: () => Promise<void> = async () => undefined): ByteSink {
  let failed: Error | undefined;
  stream.on('error', (e: Error) => (failed ??= e));
  const check = () => {
    if (failed) throw new KeepError('UNAVAILABLE', `cannot write the output: ${failed.message}`);
  };
  return {
    async write(b) {
      check();
      // events.once drops its listeners when either 'drain' or 'error' fires; the error itself is kept above
      if (!stream.write(b)) await once(stream, 'drain').catch(() => undefined);
      check();
    },
    async close() {
      check();
      await onClose();
      check();
    },
  };
}

/** stdout, or with --target that file (replaced, as restic's --target does; created readable by its owner only). */
export function openSink(target: string | undefined): ByteSink {
  if (!target) return streamSink(process.stdout);
  let fd: number;
  try {
    fd = fs.openSync(target, 'w', 0o600);
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', `cannot create --target ${target}: ${(e as Error).message}`);
  }
  const file = fs.createWriteStream('', { fd });
  return streamSink(file, () => new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve()))));
}
