import { DescMessage, DescService, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { decodeUploadRequest } from './codecs/upload.js';

/**
 * A request that failed to decode. The server's handlers see this instead of
 * an exception inside grpc-js, so they can answer INVALID_ARGUMENT with a
 * clear message rather than grpc-js's generic INTERNAL.
 */
export interface Malformed {
  $malformed: string;
}

export function isMalformed(x: unknown): x is Malformed {
  return typeof x === 'object' && x !== null && '$malformed' in x;
}

/** Requests keepd decodes by hand: one per blob on the bulk paths (codecs/). */
const HAND_DECODED: Record<string, (b: Buffer) => unknown> = { 'keep.v1.UploadRequest': decodeUploadRequest };

function decoder(schema: DescMessage, tolerant: boolean) {
  const hand = tolerant ? HAND_DECODED[schema.typeName] : undefined;
  return (b: Buffer) => {
    try {
      return hand ? hand(b) : fromBinary(schema, b);
    } catch (e) {
      if (!tolerant) throw e;
      return { $malformed: `malformed ${schema.typeName}: ${(e as Error).message}` } satisfies Malformed;
    }
  };
}

/**
 * A message's bytes as a Buffer over toBinary's output (Buffer.from of a
 * Uint8Array would copy them). A message that is already bytes goes out as it
 * is: keepd encodes its ReadBlobs responses itself (codecs/read-blobs-encode.ts).
 */
function serializer(schema: DescMessage) {
  return (msg: unknown): Buffer => {
    const u = msg instanceof Uint8Array ? msg : toBinary(schema, msg as never);
    return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  };
}

/**
 * grpc-js service definition for a protobuf-es service descriptor: grpc-js
 * does the transport, protobuf-es the (de)serialization. Method names are the
 * descriptor's localName (getConfig, upload, ...).
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const def: Record<string, ServiceDefinition[string]> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
      responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
      requestSerialize: serializer(m.input),
      requestDeserialize: decoder(m.input, true),
      responseSerialize: serializer(m.output),
      responseDeserialize: decoder(m.output, false),
      originalName: m.localName,
    };
  }
  return def;
}
