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
