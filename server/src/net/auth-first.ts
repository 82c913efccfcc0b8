import { Metadata, ServerInterceptingCall, ServerInterceptor } from '@grpc/grpc-js';
import { toStatus } from '@keep/proto';

/**
 * Every call is authenticated from its headers, before grpc-js reads a
 * message: a call without a valid token is answered at once and its bytes are
 * discarded as they arrive (grpc-js buffers a whole message, up to
 * MAX_MESSAGE_BYTES, before a handler could look at the token). The handlers
 * authenticate again for the principal; this only keeps strangers out early.
 */
export function authFirst(authenticate: (md: Metadata) => void, onAuthenticated: (peer: string) => void, onRefused: (method: string, code: number) => void): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md, mdNext) => {
            try {
              authenticate(md);
            } catch (e) {
              const s = toStatus(e);
              onRefused(method.path.slice(method.path.lastIndexOf('/') + 1), s.code);
              call.sendStatus({ code: s.code, details: s.details });
              return;
            }
            onAuthenticated(call.getPeer());
            mdNext(md);
          },
        }),
    });
}
