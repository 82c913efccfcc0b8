import { DescMessage, DescService, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { ServiceDefinition } from '@grpc/grpc-js';

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

function decoder(schema: DescMessage, tolerant: boolean) {
  return (b: Buffer) => {
    try {
      return fromBinary(schema, b);
    } catch (e) {
      if (!tolerant) throw e;
      return { $malformed: `malformed ${schema.typeName}: ${(e as Error).message}` } satisfies Malformed;
    }
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
      requestSerialize: (msg: unknown) => Buffer.from(toBinary(m.input, msg as never)),
      requestDeserialize: decoder(m.input, true),
      responseSerialize: (msg: unknown) => Buffer.from(toBinary(m.output, msg as never)),
      responseDeserialize: decoder(m.output, false),
      originalName: m.localName,
    };
  }
  return def;
}
