export * from './commands/check.js';
export * from './commands/status.js';
export type { SyncReport } from './sync/pull.js';
export type { ForgetGroup } from './commands/forget.js';
