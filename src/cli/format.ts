/** The job document for a person at a terminal. */
import { safeText } from '../lib/text.js';
import {
  UNSUCCESSFUL_STATUSES,
  type JobDocument,
  type ReviewDecision,
  type StepRecord,
  type StepStatus,
} from '../lib/types.js';

const MARK: Record<StepRecord['status'], string> = {
  succeeded: '✔',
  failed: '✖',
  skipped: '–',
  running: '…',
  pending: '·',
};

export function formatJob(doc: JobDocument): string {
  const lines: string[] = [];
  const took = doc.finishedAt
    ? ` in ${((Date.parse(doc.finishedAt) - Date.parse(doc.createdAt)) / 1000).toFixed(1)} s`
    : '';
  lines.push(`${doc.file.name}: ${doc.status}${doc.fileType ? ` (${doc.fileType})` : ''}${took}  [job ${doc.id}]`);
  if (doc.error) lines.push(`  error ${doc.error.code} at ${doc.error.step ?? '-'}: ${doc.error.message}`);
  if (doc.review) lines.push(...reviewLines(doc));
  for (const w of doc.warnings ?? []) lines.push(`  warning ${w.code}: ${oneLine(w.message, 200)}`);
  for (const [name, step] of Object.entries(doc.steps)) {
    const detail =
      step.status === 'failed'
        ? `${step.error?.code}: ${step.error?.message}`
        : (step.reason ?? (step.durationMs !== undefined ? `${step.durationMs} ms` : ''));
    lines.push(`  ${MARK[step.status]} ${name.padEnd(18)} ${detail}`);
  }
  const r = doc.results;
  if (r.metadata?.width)
    lines.push(`  size        ${r.metadata.width}x${r.metadata.height} ${r.metadata.format ?? ''}`);
  if (r.metadata?.durationSec) lines.push(`  duration    ${r.metadata.durationSec.toFixed(2)} s`);
  if (r.metadata?.pages) lines.push(`  pages       ${r.metadata.pages}`);
  if (r.metadata?.gps) lines.push(`  gps         ${r.metadata.gps.latitude}, ${r.metadata.gps.longitude}`);
  if (r.thumbnails?.length) lines.push(`  thumbnails  ${r.thumbnails.map((t) => `${t.width}x${t.height}`).join(', ')}`);
  if (r.analysis) {
    const a = r.analysis;
    if (a.caption) lines.push(`  caption     ${oneLine(a.caption)}  (${by(a)})`);
    if (a.labels.length > 0)
      lines.push(
        `  labels      ${oneLine(a.labels.map((l) => `${l.name} ${l.score.toFixed(2)}`).join(', '), 200)}  (${by(a)})`,
      );
    if (a.faceCount) lines.push(`  faces       ${a.faceCount}`);
    lines.push(`  colour      ${a.dominantColor}  sharpness ${a.sharpness}  phash ${a.phash}`);
  }
  if (r.transcript) {
    const t = r.transcript;
    const rough = t.quality === 'rough' ? ', rough' : '';
    lines.push(`  transcript  ${oneLine(t.text)}  (${t.provider === 'subtitles' ? t.source : by(t)}${rough})`);
  }
  if (r.text) lines.push(`  text        ${r.text.chars} chars: ${oneLine(r.text.excerpt)}`);
  if (r.summary) {
    if (r.summary.title) lines.push(`  title       ${oneLine(r.summary.title)}`);
    lines.push(`  summary     ${oneLine(r.summary.text)}  (${by(r.summary)})`);
  }
  if (doc.usage?.totalTokens) lines.push(`  tokens      ${doc.usage.totalTokens} in ${doc.usage.calls} model calls`);
  return `${lines.join('\n')}\n`;
}

function reviewLines(doc: JobDocument): string[] {
  const r = doc.review!;
  if (!r.decision)
    return [
      `  review      awaiting: ${oneLine(r.reason, 200)}`,
      `              decide with: media-orchestrator review ${doc.id} approve|reject [--note TEXT]`,
    ];
  const note = r.note ? `: ${oneLine(r.note, 200)}` : '';
  return [
    `  review      ${r.decision === 'approve' ? 'approved' : 'rejected'}${note}  (asked: ${oneLine(r.reason, 100)})`,
  ];
}

/**
 * `submit --wait`'s exit code for the documents it waited for: 2 if one did not succeed, else 3 if one stopped for a
 * person's review (it has not finished), else 0.
 */
export function waitExitCode(docs: JobDocument[]): number {
  if (docs.some((d) => UNSUCCESSFUL_STATUSES.includes(d.status))) return 2;
  if (docs.some((d) => d.status === 'awaiting_review')) return 3;
  return 0;
}

function by(r: { provider: string; model?: string }): string {
  return r.model ? `${r.provider} ${r.model}` : r.provider;
}

/** Text from a file or a model on one line, with nothing a terminal would act on (escape sequences). */
function oneLine(s: string, max = 100): string {
  const flat = safeText(s).replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * A running job's live line: how many of the steps so far have ended, and the ones running now, e.g.
 * `photo.jpg: running 2/3 … generateThumbnails`. Null when the update names no step.
 */
export function progressLine(name: string, steps: Partial<Record<string, StepStatus>>): string | null {
  const known = Object.entries(steps).filter((e): e is [string, StepStatus] => !!e[1] && e[1] in MARK);
  if (known.length === 0) return null;
  const ended = known.filter(([, st]) => st !== 'running' && st !== 'pending').length;
  const failed = known.filter(([, st]) => st === 'failed').map(([s]) => `${MARK.failed} ${s}`);
  const running = known.filter(([, st]) => st === 'running').map(([s]) => `${MARK.running} ${s}`);
  return [`${name}: running ${ended}/${known.length}`, ...failed, ...running].join('  ');
}

/** `line` cut to `width` characters (code points), with an ellipsis when cut. */
export function fit(line: string, width: number): string {
  const chars = [...line];
  return chars.length <= width ? line : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

/** What `review` prints once a decision is stored (through the API or not). */
export function reviewedLine(id: string, decision: ReviewDecision): string {
  return `job ${id}: ${decision.decision === 'approve' ? 'approved, finishing' : 'rejected'}`;
}
