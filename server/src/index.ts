
export * from './commands/check.js';
export * from './commands/status.js';
