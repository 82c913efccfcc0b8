import { parentPort, workerData } from 'node:worker_threads';
import { openBlob, sealForUpload } from '../blob/seal.js';
import { KeepError } from '../errors.js';
import { deriveKeys } from '../keys/subkeys.js';
import { SealJob, SealResult } from './seal-jobs.js';
import { garbagePacer } from './worker-gc.js';

/** Compresses+encrypts chunks (or decrypts+decompresses them) off the main thread. */
const keys = deriveKeys(Buffer.from(workerData.master as Uint8Array));
const port = parentPort!;

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

const produced = garbagePacer();

port.on('message', (job: SealJob) => {
  try {
    if (job.op === 'seal') {
      const salt = asBuffer(job.salt);
      const out: { bytes: Uint8Array; hash: Uint8Array }[] = [];
      const transfer: ArrayBuffer[] = [];
      let garbage = 0;
      for (const it of job.items) {
        // In place, the chunk's own buffer comes back holding the blob; else one of its own. Moved back, not cloned.
        const { bytes, hash } = sealForUpload(keys, salt, asBuffer(it.id), it.plaintext, job.compression, it.inPlace);
        out.push({ bytes, hash });
        transfer.push(bytes.buffer as ArrayBuffer);
        // The cipher's output (the blob's size) is garbage now; without in-place sealing, the plaintext too.
        // Counted before the transfer below, which leaves an in-place chunk's plaintext empty here.
        garbage += bytes.length + (it.inPlace ? 0 : it.plaintext.length);
      }
      port.postMessage({ seq: job.seq, ok: true, out } satisfies SealResult, transfer);
      produced(garbage);
      return;
    }
    const plain = openBlob(keys, asBuffer(job.id), asBuffer(job.stored)).plaintext;
    // Copy into an ArrayBuffer of its own so it can be transferred, not cloned.
    const bytes = new Uint8Array(plain.length);
    bytes.set(plain);
    port.postMessage({ seq: job.seq, ok: true, out: [{ bytes }] } satisfies SealResult, [bytes.buffer]);
    produced(job.stored.length + 2 * plain.length);
  } catch (e) {
    const err = e as Error;
    port.postMessage({ seq: job.seq, ok: false, code: e instanceof KeepError ? e.code : 'INTERNAL', message: err.message } satisfies SealResult);
  }
});
