import { ID_SIZE, Id, KeepError } from '@keep/core';
import { MAX_IDS_PER_REQUEST } from '@keep/proto';

/** The ids of an Offer or ReadBlobs request, checked: at most MAX_IDS_PER_REQUEST, each ID_SIZE bytes. */
export function checkIds(ids: Uint8Array[]): Id[] {
  if (ids.length > MAX_IDS_PER_REQUEST) throw new KeepError('INVALID_ARGUMENT', `at most ${MAX_IDS_PER_REQUEST} ids per request, got ${ids.length}`);
  return ids.map((id) => {
    if (id.length !== ID_SIZE) throw new KeepError('INVALID_ARGUMENT', `ids are ${ID_SIZE} bytes, got ${id.length}`);
    return Buffer.from(id);
  });
}
