import { parseArgs, ParseArgsConfig } from 'node:util';
import { KeepError } from '@keep/core';

type Options = NonNullable<ParseArgsConfig['options']>;

export type Values<O> = { [K in keyof O]?: O[K] extends { multiple: true } ? string[] : O[K] extends { type: 'boolean' } ? boolean : string } & { json?: boolean };

/** util.parseArgs with errors turned into one-line usage errors; every command takes --json. */
export function parse<O extends Options>(argv: string[], options: O): { values: Values<O>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { json: { type: 'boolean' }, ...options }, allowPositionals: true, strict: true });
    return { values: r.values as Values<O>, positionals: r.positionals };
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', (e as Error).message.split('\n')[0]);
  }
}

export function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new KeepError('INVALID_ARGUMENT', `${name} takes a whole number, not ${value}`);
  return n;
}

/** "10%" or "10" -> 10 */
export function percent(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.replace(/%$/, ''));
  if (!(n > 0 && n <= 100)) throw new KeepError('INVALID_ARGUMENT', `${name} takes a percentage in (0, 100], not ${value}`);
  return n;
}
