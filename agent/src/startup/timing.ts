/**
 * KEEP_DEBUG_TIMING=1: each phase of a command prints its time since the
 * process started (performance.now() counts from there) to stderr, so where a
 * short command spends its time can be seen without a profiler. Off by default:
 * a mark is then one property read.
 */
const on = Boolean(process.env.KEEP_DEBUG_TIMING);

export function mark(label: string): void {
  if (!on) return;
  const cpu = process.cpuUsage();
  process.stderr.write(`keep: timing ${performance.now().toFixed(1).padStart(7)} ms  cpu ${((cpu.user + cpu.system) / 1000).toFixed(0).padStart(4)} ms  ${label}${process.env.KEEP_DEBUG_TIMING === 'mono' ? ` @${process.hrtime.bigint() / 1000n}` : ''}\n`);
}
