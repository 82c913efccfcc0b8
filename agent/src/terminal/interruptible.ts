/**
 * Runs `work` with Ctrl-C meaning "stop cleanly" rather than the CLI's
 * exit-at-once (core's exitOnInterrupt): the first SIGINT calls `stop` and
 * `work` is left to wind down and settle; a second SIGINT exits at once, as
 * before. The CLI's own handlers are back once `work` has settled.
 */
export async function whileInterruptible<T>(stop: () => void, work: () => Promise<T>): Promise<T> {
  const saved = process.listeners('SIGINT');
  process.removeAllListeners('SIGINT');
  const atOnce = () => {
    process.removeListener('SIGINT', atOnce);
    for (const l of saved) process.on('SIGINT', l);
    if (saved.length) process.emit('SIGINT', 'SIGINT');
    else process.exit(130);
  };
  const first = () => {
    process.stderr.write('\nkeep: interrupted; stopping once the files being written settle (Ctrl-C again to quit at once)\n');
    process.once('SIGINT', atOnce);
    stop();
  };
  process.once('SIGINT', first);
  try {
    return await work();
  } finally {
    process.removeListener('SIGINT', first);
    process.removeListener('SIGINT', atOnce);
    for (const l of saved) if (!process.listeners('SIGINT').includes(l)) process.on('SIGINT', l);
  }
}
