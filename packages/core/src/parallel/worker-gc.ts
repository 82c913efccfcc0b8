/**
 * Workers that seal or open blobs leave garbage ArrayBuffers (transferred
 * bytes, zstd's and the cipher's outputs) that V8 collects only after tens of
 * MiB of them, since such an isolate allocates almost no JS objects. A
 * scavenge of its small young generation every few MiB frees them for ~0.1 ms.
 * The pools expose `gc` to their workers (seal-pool.ts, the agent's restore
 * worker-pool.ts); without it, V8's own pace applies.
 *
 * Returns the function a worker calls with the bytes it just produced.
 */
export function garbagePacer(every = 4 * 1024 * 1024): (bytes: number) => void {
  const collect = (globalThis as { gc?: (o: { type: 'minor' }) => void }).gc;
  let garbage = 0;
  return (bytes: number) => {
    garbage += bytes;
    if (collect && garbage >= every) {
      garbage = 0;
      collect({ type: 'minor' });
    }
  };
}
