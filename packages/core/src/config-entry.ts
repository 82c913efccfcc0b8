// @keep/core/config: reading the YAML configs of `keep agent` and keepd. Kept out of the core index
// because yaml, valibot and croner cost ~50 ms to evaluate at every start of a command that never reads them.
export * from './config-source.js';
export * from './config-schema-parts.js';
export { PlannedRuns } from './planned-runs.js';
