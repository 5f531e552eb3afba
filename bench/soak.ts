/**
 * A soak: many mixed corpus jobs (every file of the manifest, the broken ones too, round after round) through one
 * `media-orchestrator start` process on SQLite, all queued at once. It reports whether anything was lost (a job with
 * no document), left unfinished, or ended otherwise than the manifest says, and the process's RSS at the start (idle,
 * before the jobs), when half had ended, at the end, and its peak, with its throughput. Baseline, in the same run:
 * the RSS at the start, against which the middle and the end are ratios (a leak grows them with the jobs).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { TERMINAL_STATUSES, type JobDocument } from '../src/lib/types.js';
import { createProducer } from '../src/queue/producer.js';
import { procStatus, startProcess, stop, waitForLine } from './memory.js';
import { dropPrefix } from './service.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ENDED = new Set<string>(TERMINAL_STATUSES);

interface Row {
  file: string;
  accepted: string[];
}

function manifest(corpus: string): Row[] {
  return fs
    .readFileSync(path.join(corpus, 'MANIFEST.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'))
    .map(([p, expect]) => ({ file: path.join(corpus, p!), accepted: expect!.split('|') }));
}

/** `image`, `pdf`, … for a job that completed, `reject:CODE` for one that failed; as MANIFEST.tsv writes them. */
function outcomeOf(doc: JobDocument): string {
  if (doc.status === 'completed' || doc.status === 'completed_with_errors') return doc.fileType ?? 'unknown';
  return `reject:${doc.error?.code ?? 'NONE'}`;
}

function accepts(row: Row, outcome: string): boolean {
  return row.accepted.some((e) => e === outcome || `reject:${e}` === outcome);
}

export async function benchSoak(
  work: string,
  corpus: string,
  jobs: number,
  row: (l: string, v: string) => void,
): Promise<void> {
  const prefix = `mo-bench-soak-${process.pid}`;
  const rows = manifest(corpus);
  const dataDir = path.join(work, 'soak');
  const child = startProcess(dataDir, prefix, corpus);
  let db: Database.Database | null = null;
  // Ctrl-C stops the measuring, not the bench: what has ended so far is reported, and the service is stopped and its
  // keys dropped as after a whole run (a signal to the bench alone would leave its `start` child running).
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    await waitForLine(child, 'media-orchestrator started', 120_000);
    // Read and dropped from now on: a pipe nobody reads would stop the process at its next log line.
    child.stderr?.resume();
    await new Promise((r) => setTimeout(r, 5000));
    const start = procStatus(child.pid!).rssMb;

    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    const t0 = Date.now();
    for (let i = 0; i < jobs; i++)
      await producer.enqueueJob({ jobId: `soak-${i}`, file: { path: rows[i % rows.length]!.file } });
    await producer.close();

    db = new Database(path.join(dataDir, 'orchestrator.db'), { readonly: true });
    const ended = db.prepare(
      `SELECT count(*) AS n FROM jobs WHERE status IN (${[...ENDED].map(() => '?').join(', ')})`,
    );
    let middle: number | null = null;
    let peak = start;
    let end = start;
    let done = 0;
    // No progress for ten minutes: something is stuck; what is left is reported, not waited for.
    let lastProgress = Date.now();
    while (done < jobs && !interrupted && Date.now() - lastProgress < 600_000) {
      await new Promise((r) => setTimeout(r, 5000));
      const rss = procStatus(child.pid!).rssMb;
      peak = Math.max(peak, rss);
      const now = (ended.get(...ENDED) as { n: number }).n;
      if (now > done) lastProgress = Date.now();
      done = now;
      if (middle === null && done >= jobs / 2) middle = rss;
      end = rss;
      process.stderr.write(`\rsoak: ${done}/${jobs} ended, RSS ${rss.toFixed(0)} MB`);
    }
    process.stderr.write('\n');
    const seconds = (Date.now() - t0) / 1000;

    const get = db.prepare('SELECT doc FROM jobs WHERE id = ?');
    let lost = 0;
    let unfinished = 0;
    let internal = 0;
    const wrong: string[] = [];
    for (let i = 0; i < jobs; i++) {
      const found = get.get(`soak-${i}`) as { doc: string } | undefined;
      if (!found) {
        lost++;
        continue;
      }
      const doc = JSON.parse(found.doc) as JobDocument;
      if (!ENDED.has(doc.status)) unfinished++;
      else if (doc.error?.code === 'INTERNAL') internal++;
      const r = rows[i % rows.length]!;
      if (ENDED.has(doc.status) && !accepts(r, outcomeOf(doc)))
        wrong.push(`${path.relative(corpus, r.file)}: ${outcomeOf(doc)}`);
    }

    if (interrupted) row('interrupted', `after ${done} of ${jobs} jobs had ended: the rest count as unfinished`);
    row(`${jobs} mixed corpus jobs, one \`start\` (SQLite), all queued at once`, `${seconds.toFixed(0)} s`);
    row('throughput', `${(done / seconds).toFixed(2)} jobs/s`);
    row('lost (no document) / left unfinished', `${lost} / ${unfinished}`);
    row('ended otherwise than the manifest says / INTERNAL', `${wrong.length} / ${internal}`);
    if (wrong.length) row('first of those', [...new Set(wrong)].slice(0, 5).join('; '));
    row('RSS at the start, idle (baseline)', `${start.toFixed(0)} MB`);
    row('RSS when half had ended', middle === null ? 'not reached' : `${middle.toFixed(0)} MB`);
    row('RSS at the end', `${end.toFixed(0)} MB`);
    row('RSS peak', `${peak.toFixed(0)} MB`);
    row('ratio end / start', (end / start).toFixed(2));
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    db?.close();
    await stop(child);
    await dropPrefix(prefix);
  }
}
