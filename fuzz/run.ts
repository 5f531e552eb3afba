/**
 * npm run fuzz -- --seed 42 --count 10000 [--start 0] [--types image,pdf] [--concurrency 2] [--out fuzz-out]
 *                 [--step-timeout 20000] [--recycle 500] [--models]
 * npm run fuzz -- --seed 42 --case 1234[,5678]   re-run cases, keep their mutated files, print their results
 * npm run fuzz -- --seed 42 --case 1234 --base pdf/image-only.pdf
 *                                                 the same, mutating that file (how a finding is named: the case
 *                                                 stays the same bytes when the corpus gains files)
 *
 * Mutates corpus files and runs each through the `process` code path in long-lived children (fuzz/driver.ts).
 * Prints progress to stderr and a summary table at the end; writes `<out>/summary.json`, `<out>/cases.jsonl` and
 * `<out>/findings/`. Exit code 1 when anything was found (a crash, a hang, INTERNAL, a malformed job document).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CORPUS_TYPES, ROOT, runFuzz, type Summary, type Tally } from './driver.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '42' },
    count: { type: 'string', default: '1000' },
    start: { type: 'string', default: '0' },
    case: { type: 'string' },
    types: { type: 'string', default: CORPUS_TYPES.join(',') },
    base: { type: 'string' },
    concurrency: { type: 'string', default: '2' },
    out: { type: 'string', default: 'fuzz-out' },
    'step-timeout': { type: 'string', default: '20000' },
    recycle: { type: 'string', default: '500' },
    models: { type: 'boolean', default: false },
  },
});

function whole(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`--${name} must be a whole number of at least ${min}, got "${raw}"\n`);
    process.exit(1);
  }
  return n;
}

const seed = whole('seed', values.seed, 0);
const chosen = values.case === undefined ? undefined : values.case.split(',').map((c) => whole('case', c.trim(), 0));
const start = whole('start', values.start, 0);
const count = whole('count', values.count, 1);
const types = values.types.split(',').map((t) => t.trim());
const unknown = types.filter((t) => !(CORPUS_TYPES as readonly string[]).includes(t));
if (unknown.length > 0) {
  process.stderr.write(`--types takes ${CORPUS_TYPES.join(', ')}; not ${unknown.join(', ')}\n`);
  process.exit(1);
}
const out = path.resolve(values.out);
const corpus = process.env.MEDIA_CORPUS ?? path.resolve(ROOT, '..', 'shared', 'corpus');

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => controller.abort());

const summary = await runFuzz({
  seed,
  cases: chosen ?? Array.from({ length: count }, (_, i) => start + i),
  types,
  ...(values.base !== undefined && { base: values.base }),
  concurrency: whole('concurrency', values.concurrency, 1),
  stepTimeoutMs: whole('step-timeout', values['step-timeout'], 1000),
  recycleAfter: whole('recycle', values.recycle, 1),
  models: values.models,
  out,
  corpus,
  keepFiles: chosen !== undefined,
  signal: controller.signal,
  onCase: (r, done, total) => {
    if (r.finding)
      process.stderr.write(
        `case ${r.index} (${r.file}, ${r.ops.join(' + ')}): ${r.finding.kind} ${r.finding.detail.split('\n')[0]}\n`,
      );
    if (done % 100 === 0 || done === total || chosen !== undefined)
      process.stderr.write(`[${done}/${total}] case ${r.index} ${r.file} ${r.outcome} ${r.ms} ms\n`);
  },
});
if (chosen !== undefined) {
  const lines = fs.readFileSync(path.join(out, 'cases.jsonl'), 'utf8');
  process.stdout.write(`${lines}mutated files: ${path.join(out, 'findings')}\n`);
}
process.stdout.write(report(summary));
process.exit(summary.findings.length > 0 || controller.signal.aborted ? 1 : 0);

function report(s: Summary): string {
  const cols = ['type', 'cases', 'clean', 'crashes', 'hangs', 'INTERNAL', 'bad doc'];
  const row = (name: string, t: Tally): string[] =>
    [name, t.cases, t.clean, t.CRASH, t.HANG, t.INTERNAL, t.BAD_DOCUMENT].map(String);
  const rows = [cols, ...Object.entries(s.byType).map(([k, t]) => row(k, t)), row('all', s.total)];
  const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  const counts = (m: Record<string, number>): string =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `  ${String(n).padStart(6)}  ${k}`)
      .join('\n');
  const stopped = s.total.cases < s.count ? `, stopped after ${s.total.cases}` : '';
  const lines = [
    '',
    `fuzz: seed ${s.seed}, cases ${s.first}..${s.first + s.count - 1} (${s.count}${stopped}), types ${s.types.join(',')}, ` +
      `concurrency ${s.concurrency}, step limit ${s.stepTimeoutMs} ms, case limit ${s.caseLimitMs} ms`,
    `wall ${(s.wallMs / 1000).toFixed(0)} s, ${s.casesPerMinute} cases/min`,
    '',
    ...table,
    '',
    'outcomes:',
    counts(s.byOutcome),
    '',
    'failed steps (step:code):',
    counts(s.stepErrors) || '  none',
    '',
    `findings: ${s.findings.length}`,
    ...s.findings.map(
      (f) =>
        `  ${f.finding!.kind} case ${f.index} ${f.file} [${f.ops.join(' + ')}]: ${f.finding!.detail.split('\n')[0]}\n` +
        `    reproduce: ${f.reproduce}\n    file: ${f.kept}`,
    ),
    '',
  ];
  return lines.join('\n');
}
