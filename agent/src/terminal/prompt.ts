import { StringDecoder } from 'node:string_decoder';
import type { ReadStream } from 'node:tty';
import { KeepError } from '@keep/core';

/** Typed ahead of the next question (two lines in one read), kept for it. */
let typedAhead = '';

/** Whether a passphrase can be asked for: stdin is a terminal (never a pipe a backup reads). */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY);
}

/**
 * Ask on stderr, read one line from the terminal on stdin without echo (raw
 * mode, so the terminal never shows it), as restic and ssh do. Backspace and
 * Ctrl-U edit; Ctrl-C interrupts (exit 130); Ctrl-D on an empty line gives up.
 */
export function promptHidden(question: string): Promise<string> {
  const input = process.stdin as ReadStream;
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    let typed = '';
    const finish = (rest: string, outcome: () => void, newline = true) => {
      typedAhead = rest;
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      if (newline) process.stderr.write('\n');
      outcome();
    };
    const take = (text: string) => {
      const chars = [...text];
      for (let i = 0; i < chars.length; i++) {
        const c = chars[i];
        const rest = () => chars.slice(i + 1).join('').replace(/^\n/, '');
        if (c === '\r' || c === '\n') return finish(rest(), () => resolve(typed));
        if (c === '\u0003') {
          // Raw mode turned Ctrl-C into a byte: hand it to the SIGINT handler (cli/main.ts's exitOnInterrupt: one line, exit 130)
          // synchronously; a signal sent to ourselves could arrive after the emptied event loop let the process exit 0.
          return finish('', () => process.emit('SIGINT', 'SIGINT') || reject(new KeepError('INVALID_ARGUMENT', 'interrupted')), false);
        }
        if (c === '\u0004' && !typed) return finish('', () => reject(new KeepError('INVALID_ARGUMENT', 'no passphrase entered')));
        if (c === '\u007f' || c === '\b') typed = [...typed].slice(0, -1).join('');
        else if (c === '\u0015') typed = '';
        else if (c >= ' ') typed += c;
      }
    };
    const onData = (chunk: Buffer) => take(decoder.write(chunk));
    // Raw mode before the question: whatever is typed once it shows is never echoed.
    input.setRawMode(true);
    process.stderr.write(question);
    input.on('data', onData);
    input.resume();
    if (typedAhead) {
      const ahead = typedAhead;
      typedAhead = '';
      take(ahead);
    }
  });
}
