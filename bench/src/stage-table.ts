import { parseArgs } from 'node:util';
import { profileFiles, stageRows, topOther, totalsOf } from './cpuprofile-stages.js';
import { textTable } from './util.js';

/**
 * node bench/dist/stage-table.js --bytes N [--cpu S] [--side agent|keepd] PROFILE_OR_DIR...
 *
 * Sums the self time of every .cpuprofile given (node --cpu-prof writes one per thread) by stage,
 * as CPU-s per GB of N bytes; with --cpu (the process's measured CPU-s) the shares are scaled to it;
 * --side keepd counts file system time as pack I/O (keepd touches no source files).
 */
const USAGE = 'usage: node bench/dist/stage-table.js --bytes N [--cpu SECONDS] [--side agent|keepd] [--title TEXT] PROFILE_OR_DIR...';

function main(): number {
  const { values, positionals } = parseArgs({
    options: { bytes: { type: 'string' }, cpu: { type: 'string' }, side: { type: 'string' }, title: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help || !positionals.length || !values.bytes) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const bytes = Number(values.bytes);
  const cpu = values.cpu !== undefined ? Number(values.cpu) : null;
  if (!(bytes > 0) || (cpu !== null && !(cpu >= 0))) throw new Error('--bytes takes a positive number, --cpu a number of seconds');
  const side = values.side ?? 'agent';
  if (side !== 'agent' && side !== 'keepd') throw new Error('--side takes agent or keepd');
  const files = profileFiles(positionals);
  const t = totalsOf(files, side);
  const { header, rows } = stageRows(t, bytes, cpu);
  console.log(textTable(header, rows, values.title ?? `${files.length} profile(s), ${(bytes / 1e6).toFixed(1)} MB${cpu === null ? '' : `, ${cpu.toFixed(2)} CPU-s measured`}`));
  const other = topOther(t);
  if (other.length) console.log(`"other", by file:\n  ${other.join('\n  ')}`);
  return 0;
}

process.exitCode = main();
