import fs from 'node:fs';

/**
 * A secret file any local account can read gets a warning, not a refusal as
 * ssh gives a private key: restic never checked, so a refusal would break
 * working scripts on upgrade, and some file systems show every file as 0777.
 * Group read is not warned about: it is how the postgres user is given the
 * passphrase file on purpose.
 */
export function warnIfWorldReadable(file: string, what: string): void {
  try {
    const mode = fs.statSync(file).mode;
    if (mode & 0o004) process.stderr.write(`keep: warning: ${what} ${file} is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod o-r it\n`);
  } catch {
    // it was just read: a stat failure here is a race, not worth a second error
  }
}
