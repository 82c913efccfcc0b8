import fs from 'node:fs';

/**
 * A seam for tests of races between processes: with
 * KEEP_TEST_PAUSE_AT=POINT:FILE in the environment, reaching `point` creates
 * FILE and waits until the test deletes it. Unset (always, outside tests)
 * this does nothing.
 */
export async function pausePoint(point: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const spec = env.KEEP_TEST_PAUSE_AT;
  if (!spec || !spec.startsWith(`${point}:`)) return;
  const file = spec.slice(point.length + 1);
  fs.writeFileSync(file, String(process.pid));
  while (fs.existsSync(file)) await new Promise((r) => setTimeout(r, 20));
}
