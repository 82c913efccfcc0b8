import pino from 'pino';

/**
 * JSON logs (pino). Redaction is a second line of defence: tokens are never
 * passed to the logger in the first place.
 */
export function createLogger(level = process.env.KEEP_LOG_LEVEL ?? 'info') {
  return pino({ level, base: { service: 'keepd' }, redact: ['token', 'authorization', '*.authorization', '*.token'] });
}

export type Logger = ReturnType<typeof createLogger>;
