import fs from 'node:fs';
import path from 'node:path';
import { KeepError } from '../errors.js';
import { atomicWrite } from '../fsutil.js';
import type { KeyFile } from './keyfile.js';
import { parseKeyFile } from './keyfile-check.js';

/** A repository's keys/<id>.json: wrapped master keys (keyfile.ts). */
export class KeyStore {
  constructor(private readonly keysDir: string) {}

  /** The usable key files (damaged or out-of-bounds ones are left out: damaged() lists them). */
  files(): KeyFile[] {
    return this.read().files;
  }

  /** Key files that do not parse or break the bounds, each with why: every reader skips them, an admin removes them. */
  damaged(): { id: string; problem: string }[] {
    return this.read().damaged;
  }

  private read(): { files: KeyFile[]; damaged: { id: string; problem: string }[] } {
    const files: KeyFile[] = [];
    const damaged: { id: string; problem: string }[] = [];
    for (const n of fs.readdirSync(this.keysDir).filter((n) => n.endsWith('.json')).sort()) {
      const id = n.slice(0, -'.json'.length);
      try {
        const f = parseKeyFile(fs.readFileSync(path.join(this.keysDir, n), 'utf8'), id);
        if (f.id !== id) throw new KeepError('CORRUPT', `key file ${id} is damaged: it holds key ${f.id}`);
        files.push(f);
      } catch (e) {
        damaged.push({ id, problem: (e as Error).message });
      }
    }
    return { files, damaged };
  }

  add(f: KeyFile): void {
    if (!/^[0-9a-f]{16}$/.test(f.id)) throw new KeepError('INVALID_ARGUMENT', 'bad key file id');
    atomicWrite(path.join(this.keysDir, `${f.id}.json`), JSON.stringify(f, null, 2) + '\n');
  }

  /** Remove a key file, damaged ones included; never the last usable one. */
  remove(id: string): void {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new KeepError('INVALID_ARGUMENT', `${id} is not a key id (16 hex digits)`);
    const file = path.join(this.keysDir, `${id}.json`);
    if (!fs.existsSync(file)) throw new KeepError('NOT_FOUND', `no key ${id}`);
    const usable = this.files();
    if (usable.length === 1 && usable[0].id === id) throw new KeepError('INVALID_ARGUMENT', 'refusing to remove the last key: the repository would become unreadable');
    fs.rmSync(file);
  }
}
