import { parentPort, workerData } from 'node:worker_threads';
import { openBlob, sealData } from '../blob/seal.js';
import { KeepError } from '../errors.js';
import { deriveKeys } from '../keys/subkeys.js';
import { SealJob, SealResult } from './seal-jobs.js';

/** Compresses+encrypts chunks (or decrypts+decompresses them) off the main thread. */
const keys = deriveKeys(Buffer.from(workerData.master as Uint8Array));
const port = parentPort!;

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

port.on('message', (job: SealJob) => {
  let result: SealResult;
  try {
    const bytes =
      job.op === 'seal'
        ? sealData(keys, asBuffer(job.salt), asBuffer(job.id), job.plaintext, job.compression)
        : openBlob(keys, asBuffer(job.id), asBuffer(job.stored)).plaintext;
    // Copy into an ArrayBuffer of its own so it can be transferred, not cloned.
    const out = new Uint8Array(bytes.length);
    out.set(bytes);
    result = { seq: job.seq, ok: true, bytes: out };
    port.postMessage(result, [out.buffer]);
  } catch (e) {
    const err = e as Error;
    result = { seq: job.seq, ok: false, code: e instanceof KeepError ? e.code : 'INTERNAL', message: err.message };
    port.postMessage(result);
  }
});
