import { AdminClient } from '../repo/remote-admin.js';
import { printJson } from '../terminal/output.js';

/** Print the JSON under --json, else the lines (none: nothing). */
export function show(json: boolean | undefined, value: unknown, text: () => string): void {
  if (json) return printJson(value);
  const t = text();
  if (t) console.log(t);
}

/** Run `fn` with an admin connection to the keepd in KEEP_REPO, closed after. */
export async function withAdmin<T>(fn: (a: AdminClient) => Promise<T>): Promise<T> {
  const admin = await AdminClient.open();
  try {
    return await fn(admin);
  } finally {
    await admin.close();
  }
}
