import { KeepError } from '../errors.js';
import type { KeyFileTexts } from '../store/repo-storage.js';
import type { KeyFile } from './keyfile.js';
import { parseKeyFile } from './keyfile-check.js';

/** A repository's keys/<id>.json: wrapped master keys (keyfile.ts), where its storage keeps them. */
export class KeyStore {
  constructor(private readonly texts: KeyFileTexts) {}

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
    for (const { id, text } of this.texts.list()) {
      try {
        const f = parseKeyFile(text, id);
        if (f.id !== id) throw new KeepError('CORRUPT', `key file ${id} is damaged: it holds key ${f.id}`);
        files.push(f);
      } catch (e) {
        damaged.push({ id, problem: (e as Error).message });
      }
    }
    return { files, damaged };
  }

  /** The write starts before the first await: a caller that does not wait still finds the file written (local directory). */
  async add(f: KeyFile): Promise<void> {
    if (!/^[0-9a-f]{16}$/.test(f.id)) throw new KeepError('INVALID_ARGUMENT', 'bad key file id');
    await this.texts.write(f.id, JSON.stringify(f, null, 2) + '\n');
  }

  /** Remove a key file, damaged ones included; never the last usable one. */
  async remove(id: string): Promise<void> {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new KeepError('INVALID_ARGUMENT', `${id} is not a key id (16 hex digits)`);
    if (!this.texts.list().some((k) => k.id === id)) throw new KeepError('NOT_FOUND', `no key ${id}`);
    const usable = this.files();
    if (usable.length === 1 && usable[0].id === id) throw new KeepError('INVALID_ARGUMENT', 'refusing to remove the last key: the repository would become unreadable');
    await this.texts.remove(id);
  }
}
