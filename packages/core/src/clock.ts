/**
 * The one source of time. Everything that compares times (leases, GC margins,
 * snapshot timestamps, retention) takes a Clock so tests can move time
 * without sleeping. Never call Date.now() elsewhere in core, agent or server.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock tests can set and advance. */
export class ManualClock implements Clock {
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  set(t: number): void {
    this.t = t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/**
 * The clock of a keep or keepd process: the system clock, shifted by
 * KEEP_CLOCK_OFFSET_MS when set. That variable exists for tests and drills
 * (run a prune "two hours later" to see the grace window expire); it moves
 * only this process's notion of now, never the file system's.
 */
export function processClock(env: NodeJS.ProcessEnv = process.env): Clock {
  const raw = env.KEEP_CLOCK_OFFSET_MS;
  if (!raw) return systemClock;
  const offset = Number(raw);
  if (!Number.isFinite(offset)) throw new Error(`KEEP_CLOCK_OFFSET_MS must be a number of milliseconds, not ${raw}`);
  return { now: () => Date.now() + offset };
}
