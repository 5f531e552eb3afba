/**
 * How long the command line takes to answer, against the baseline of starting Node itself (`node -e 0`) in the same
 * run: `--help`, and `status ID` of a job in the store (SQLite in a DATA_DIR of the bench's). The median of several
 * runs of each, wall time of the whole process, as a user in a terminal sees it.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const BIN = path.resolve(import.meta.dirname, '..', 'bin', 'media-orchestrator');
const CORPUS_IMAGE = 'image/320x240.jpg';

function medianMs(runs: number, command: string, args: string[], env: Record<string, string>): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    execFileSync(command, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function benchCli(work: string, corpus: string, row: (l: string, v: string) => void): void {
  const env = { DATA_DIR: path.join(work, 'cli-data'), LOG_LEVEL: 'silent' };
  execFileSync(BIN, ['process', '--job-id', 'cli-bench', path.join(corpus, CORPUS_IMAGE)], {
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
  const node = medianMs(9, process.execPath, ['-e', '0'], env);
  const help = medianMs(9, BIN, ['--help'], env);
  const status = medianMs(9, BIN, ['status', 'cli-bench'], env);
  row('node -e 0 (baseline), median of 9', `${node.toFixed(0)} ms`);
  row('media-orchestrator --help', `${help.toFixed(0)} ms (${(help / node).toFixed(1)}x node)`);
  row('media-orchestrator status ID (a stored job)', `${status.toFixed(0)} ms (${(status / node).toFixed(1)}x node)`);
}
