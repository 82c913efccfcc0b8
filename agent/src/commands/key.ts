import os from 'node:os';
import { KeepError, processClock, unwrapMasterKey, wrapMasterKey } from '@keep/core';
import { parse, positiveInt } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openRepository, readPassword } from '../repo/open.js';
import { scryptFromCost } from './init.js';

/** keep key add|list|remove|passwd — the new passphrase: --new-password-file, KEEP_NEW_PASSWORD(_FILE|_COMMAND), or asked twice on a terminal. */
export async function keyCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { 'kdf-cost': { type: 'string' }, 'new-password-file': { type: 'string' } });
  const repo = await openRepository(process.env, { write: sub !== 'list' });
  try {
    const newPassword = () => {
      const env = values['new-password-file'] ? { ...process.env, KEEP_NEW_PASSWORD: undefined, KEEP_NEW_PASSWORD_COMMAND: undefined, KEEP_NEW_PASSWORD_FILE: values['new-password-file'] } : process.env;
      return readPassword(env, 'KEEP_NEW_PASSWORD', { prompt: 'enter new passphrase: ', confirm: true });
    };
    const meta = () => ({ host: os.hostname(), username: os.userInfo().username, created: new Date(processClock().now()), scrypt: scryptFromCost(positiveInt(values['kdf-cost'], '--kdf-cost')) });
    switch (sub) {
      case 'list': {
        const files = await repo.conn.keyFiles();
        const rows = files.map((f) => ({ id: f.id, current: f.id === repo.keyId, host: f.host, username: f.username, created: f.created, kdf: `${f.kdf.name} N=${f.kdf.N} r=${f.kdf.r} p=${f.kdf.p}` }));
        if (values.json) printJson(rows);
        else for (const r of rows) console.log(`${r.current ? '*' : ' '} ${r.id}  ${r.created}  ${r.username}@${r.host}  ${r.kdf}`);
        return;
      }
      case 'add': {
        const f = wrapMasterKey(repo.master, await newPassword(), meta());
        await repo.conn.addKeyFile(f);
        if (values.json) printJson({ added: f.id });
        else console.log(`added key ${f.id}`);
        return;
      }
      case 'remove': {
        const id = positionals[0];
        if (!id) throw new KeepError('INVALID_ARGUMENT', 'usage: keep key remove ID');
        if (id === repo.keyId) throw new KeepError('INVALID_ARGUMENT', 'refusing to remove the key you unlocked with; use `keep key passwd` to replace it');
        await repo.conn.removeKeyFile(id);
        if (values.json) printJson({ removed: id });
        else console.log(`removed key ${id}`);
        return;
      }
      case 'passwd': {
        const password = await newPassword();
        const f = wrapMasterKey(repo.master, password, meta());
        if (!unwrapMasterKey(f, password)) throw new KeepError('INTERNAL', 'new key file does not open; nothing changed');
        await repo.conn.addKeyFile(f);
        await repo.conn.removeKeyFile(repo.keyId);
        if (values.json) printJson({ added: f.id, removed: repo.keyId });
        else console.log(`passphrase changed: key ${repo.keyId} replaced by ${f.id}`);
        return;
      }
      default:
        throw new KeepError('INVALID_ARGUMENT', 'usage: keep key add|list|remove ID|passwd');
    }
  } finally {
    await repo.conn.close();
  }
}
