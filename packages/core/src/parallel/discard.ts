/**
 * Free an ArrayBuffer's memory at the next young-generation collection
 * instead of the next full one: its bytes move to a new, unreferenced
 * ArrayBuffer (the old one is left empty). A buffer that lived long enough
 * to reach V8's old generation otherwise waits for a full collection, which
 * V8 starts only after 64 MiB more of such memory (and malloc keeps what it
 * held meanwhile). The caller must hold the only reference to its bytes.
 */
export function discardBuffer(ab: ArrayBuffer): void {
  if (ab.byteLength > 0) structuredClone(ab, { transfer: [ab] });
}
