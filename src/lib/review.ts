/**
 * When a job waits for a person before it finishes, and what that person is shown. The graph asks before finalize:
 * a job that asked for review (`instructions.review.when: always`), or whose picture the vision model flagged, or
 * that carries a label its instructions send to review, stops there (LangGraph's interrupt) until a decision comes.
 */
import type { Instructions } from './instructions.js';
import type { ReviewDecision, ReviewRequest, Results } from './types.js';

const MAX_NOTE = 2000;

export function reviewNeeded(results: Results, instructions: Instructions | null): ReviewRequest | null {
  const when = instructions?.review?.when ?? 'flagged';
  if (when === 'never') return null;
  const analysis = results.analysis;
  const excerpt = (results.summary?.text ?? results.text?.excerpt ?? results.transcript?.text)?.slice(0, 600);
  const evidence: ReviewRequest['evidence'] = {
    ...(analysis && {
      labels: analysis.labels.slice(0, 10),
      caption: analysis.caption ?? null,
      safety: analysis.safety ?? null,
    }),
    ...(excerpt && { excerpt }),
  };
  if (when === 'always') return { reason: 'the job asked for review', evidence };
  if (analysis?.safety?.flagged) {
    const what = analysis.safety.categories.join(', ') || 'unsafe content';
    return { reason: `the vision model flagged the picture (${what})`, evidence };
  }
  const sent = new Set((instructions?.review?.labels ?? []).map((l) => l.toLowerCase()));
  const seen = [...(analysis?.labels ?? []).map((l) => l.name), ...(analysis?.tags ?? [])];
  const hit = seen.find((name) => sent.has(name.toLowerCase()));
  if (hit) return { reason: `the picture shows "${hit}", a label its instructions send to review`, evidence };
  return null;
}

/** A resume value, checked: it comes through the API or LangGraph Studio. */
export function parseDecision(value: unknown): ReviewDecision {
  const v = (value ?? {}) as { decision?: unknown; note?: unknown };
  if (v.decision !== 'approve' && v.decision !== 'reject')
    throw new Error('a review is resumed with { "decision": "approve" | "reject", "note"?: string }');
  const note = typeof v.note === 'string' ? v.note.slice(0, MAX_NOTE) : undefined;
  return { decision: v.decision, ...(note && { note }) };
}
