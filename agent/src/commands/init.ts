import os from 'node:os';
import { KeepError, newMasterKey, parseChunkerSizes, processClock, wrapMasterKey } from '@keep/core';
import { parse, positiveInt } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { LocalConnection } from '../repo/local.js';
import { rememberKdfParams } from '../startup/early-kek.js';
import { connect, isRemote, readPassword, repoLocation } from '../repo/open.js';

/** scrypt cost as log2(N); recorded in the key file. Lower values are for tests and tiny hosts. */
export function scryptFromCost(cost: number | undefined) {
  if (cost === undefined) return undefined;
  // 18 is the bound every reader enforces (KDF_MAX_N in core's kdf.ts): 256 MiB.
  if (cost < 10 || cost > 18) throw new KeepError('INVALID_ARGUMENT', '--kdf-cost is log2 of scrypt N (r=8, p=1), from 10 to 18 (default: N=2^15, r=8, p=3, the work of 17 in a quarter of the memory)');
  return { N: 2 ** cost, r: 8, p: 1 };
}

export async function initCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    'kdf-cost': { type: 'string' },
    'chunk-min': { type: 'string' },
    'chunk-avg': { type: 'string' },
    'chunk-max': { type: 'string' },
  });
  const location = repoLocation();
  const password = await readPassword(process.env, 'KEEP_PASSWORD', { prompt: 'enter passphrase for new repository: ', confirm: true });
  const scrypt = scryptFromCost(positiveInt(values['kdf-cost'], '--kdf-cost'));
  const chunker = parseChunkerSizes(values['chunk-min'], values['chunk-avg'], values['chunk-max']);
  if (chunker && isRemote(location)) throw new KeepError('INVALID_ARGUMENT', 'chunk sizes of a keepd repository are set by `keepd init`');
  const conn = isRemote(location) ? await connect(location, process.env, { write: true }) : await LocalConnection.init(location, undefined, chunker);
  try {
    if ((await conn.keyFiles()).length > 0) throw new KeepError('ALREADY_EXISTS', `${location} is already initialized`);
    const key = wrapMasterKey(newMasterKey(), password, { host: os.hostname(), username: os.userInfo().username, created: new Date(processClock().now()), scrypt });
    await conn.addKeyFile(key);
    rememberKdfParams(location, [key.kdf]);
    const config = await conn.config();
    if (values.json) printJson({ repository: config.id, location, key: key.id, chunker: config.chunker });
    else console.log(`created repository ${config.id} at ${location}\nkeep your passphrase safe: without it the data cannot be read`);
  } finally {
    await conn.close();
  }
}
