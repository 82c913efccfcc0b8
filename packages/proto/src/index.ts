export * from './gen/keep/v1/repository_pb.js';
export * from './grpc.js';
export * from './varint.js';

/** The protocol version this build speaks (keep.v1, revision 1). */
export const PROTOCOL_VERSION = 1;
