import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';

export type KeyPath = (string | number)[];

/** `jobs[1].schedule.every` */
export function formatKeyPath(path: KeyPath): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

/**
 * A parsed config file that can say where each key is: errors name
 * `file:line: key.path: message`, from the yaml package's node ranges.
 */
export class ConfigSource {
  readonly doc: Document;
  private readonly lines = new LineCounter();

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
  }

  /** YAML syntax errors, already as messages with their lines. */
  syntaxErrors(): string[] {
    return this.doc.errors.map((e) => `${this.file}:${this.lines.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`);
  }

  /** The line of the deepest part of `path` the file holds (a missing key: its parent's line). */
  lineOf(path: KeyPath): number {
    let node: unknown = this.doc.contents;
    let offset = (node as { range?: [number] } | null)?.range?.[0] ?? 0;
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
        if (!pair) break;
        offset = (pair.key as { range?: [number] }).range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof key === 'number' && node.items[key]) {
        node = node.items[key];
        offset = (node as { range?: [number] }).range?.[0] ?? offset;
      } else break;
    }
    return this.lines.linePos(offset).line;
  }

  /** `agent.yaml:12: jobs[1].schedule.every: message` */
  error(path: KeyPath, message: string): string {
    return `${this.file}:${this.lineOf(path)}: ${path.length ? `${formatKeyPath(path)}: ` : ''}${message}`;
  }

  /** Every key path in the document, with its key (to find keys that must not be there wherever they are). */
  *keys(node: unknown = this.doc.contents, path: KeyPath = []): Generator<KeyPath> {
    if (isMap(node)) {
      for (const p of node.items) {
        const key = isScalar(p.key) ? p.key.value : p.key;
        if (typeof key !== 'string') continue;
        yield [...path, key];
        yield* this.keys(p.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) yield* this.keys(node.items[i], [...path, i]);
    }
  }
}
