/** Why a run started: its schedule, the first run of a job never run, a run missed while down, a retry. */
export type RunReason = 'scheduled' | 'first' | 'missed' | 'interrupted' | 'retry';

/** What a job runner reports of a run that finished. */
export interface RunTotals {
  snapshot?: string;
  files: number;
  bytes: number;
  warnings: string[];
}

/** One run of one job, as the state file keeps it and reportRun reports it. */
export interface RunOutcome extends RunTotals {
  job: string;
  reason: RunReason;
  /** 1 for a scheduled run, 2 for its first retry, ... */
  attempt: number;
  start: number;
  end: number;
  result: 'success' | 'failure';
  error?: string;
  /** failures: the KeepError code or a command's "exit N" (run-error-class.ts); what keepd reads of the error */
  error_class?: string;
}
