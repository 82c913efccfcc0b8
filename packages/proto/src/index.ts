export * from './gen/keep/v1/repository_pb.js';
export * from './address.js';
export * from './credentials.js';
export * from './grpc.js';
export * from './keepalive.js';
export * from './limits.js';
export * from './snapshot-wire.js';
export * from './forget-wire.js';
export * from './run-report-wire.js';
export * from './drill-report-wire.js';
export * from './status-map.js';
export * from './codecs/varint.js';
export * from './codecs/frame.js';
export * from './codecs/upload.js';
export * from './codecs/upload-batch.js';
export * from './codecs/read-blobs-encode.js';
export * from './codecs/read-blobs-parse.js';

/** The protocol version this build speaks (keep.v1, revision 1). */
export const PROTOCOL_VERSION = 1;
