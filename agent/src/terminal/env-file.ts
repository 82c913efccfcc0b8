import fs from 'node:fs';
import { KeepError } from '@keep/core';

/**
 * `--env-file FILE`: KEY=VALUE lines as dotenv, docker compose and
 * `node --env-file` read them: blank lines and `# comments` skipped, an
 * optional `export ` prefix, 'single quotes' taken literally, "double quotes"
 * with \n \t \" \\ escapes, unquoted values trimmed and cut at ` #`.
 */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    // The line number only: the line itself may hold a secret.
    if (!m) throw new KeepError('INVALID_ARGUMENT', `--env-file ${file}: line ${i + 1} is not KEY=VALUE`);
    vars[m[1]] = value(m[2], file, i + 1);
  });
  return vars;
}

function value(v: string, file: string, line: number): string {
  const q = v[0];
  if (q === "'" || q === '"') {
    const end = closingQuote(v, q);
    if (end < 0) throw new KeepError('INVALID_ARGUMENT', `--env-file ${file}: line ${line} has an unclosed ${q === '"' ? 'double' : 'single'} quote`);
    const rest = v.slice(end + 1).trim();
    if (rest && !rest.startsWith('#')) throw new KeepError('INVALID_ARGUMENT', `--env-file ${file}: line ${line} has text after the closing quote`);
    const body = v.slice(1, end);
    return q === "'" ? body : body.replace(/\\([nrt"\\$])/g, (_, c: string) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? c);
  }
  return v.replace(/\s+#.*$/, '').trim();
}

function closingQuote(v: string, q: string): number {
  for (let i = 1; i < v.length; i++) {
    if (q === '"' && v[i] === '\\') i++;
    else if (v[i] === q) return i;
  }
  return -1;
}

/** The variables of FILE (a read error names the file, never its contents). */
export function readEnvFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', `cannot read --env-file ${file}: ${(e as Error).message}`);
  }
  return parseEnvFile(text, file);
}

/**
 * Set the file's variables that the environment lacks: a variable already set
 * wins, as with dotenv, docker compose and `node --env-file`, so
 * `KEEP_REPO=/other keep --env-file prod.env snapshots` does what it says.
 */
export function fillEnv(vars: Record<string, string>, env: NodeJS.ProcessEnv): void {
  for (const [k, v] of Object.entries(vars)) if (env[k] === undefined) env[k] = v;
}
