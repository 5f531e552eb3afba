/**
 * Cutting inputs that are too long for one model call, and putting the answers back together: text at paragraph,
 * line and sentence boundaries; audio into fixed windows that overlap a little, so that no word is lost at a cut,
 * with the duplicated stretch removed again when the timed segments are joined.
 */
import type { TranscriptSegment } from './types.js';

/**
 * Runs `fn` over `items`, at most `limit` at a time, results in input order. The first failure stops the rest:
 * calls not started are not started, calls in flight see their signal abort, and the failure is thrown once they
 * have settled (so that nothing still writes to a temporary folder the caller is about to remove). An abort of
 * `signal` rejects with its reason.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal,
  fn: (item: T, index: number, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  signal.throwIfAborted();
  const inner = new AbortController();
  const onAbort = (): void => inner.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const results: R[] = new Array<R>(items.length);
  const state: { next: number; failure?: { error: unknown } } = { next: 0 };
  const worker = async (): Promise<void> => {
    while (!state.failure && !inner.signal.aborted && state.next < items.length) {
      const index = state.next++;
      try {
        results[index] = await fn(items[index] as T, index, inner.signal);
      } catch (error) {
        if (!state.failure) {
          state.failure = { error };
          inner.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  signal.throwIfAborted();
  if (state.failure) throw state.failure.error;
  return results;
}

// ---- text --------------------------------------------------------------------------------------------------------

/** Coarse to fine: paragraphs, lines, sentences, words; each piece is joined back with what separated it. */
const TEXT_BOUNDARIES: { split: RegExp; join: string }[] = [
  { split: /\n[ \t]*\n\s*/, join: '\n\n' },
  { split: /\n/, join: '\n' },
  { split: /(?<=[.!?。！？;:])\s+/, join: ' ' },
  { split: /\s+/, join: ' ' },
];

/** Splits text into pieces of at most `maxChars`, cutting at the coarsest boundary that makes them fit. */
export function splitText(text: string, maxChars: number): string[] {
  const max = Math.max(1, Math.floor(maxChars));
  return splitAt(text.trim(), max, 0).filter((piece) => piece.length > 0);
}

function splitAt(text: string, max: number, level: number): string[] {
  if (text.length <= max) return [text];
  const boundary = TEXT_BOUNDARIES[level];
  if (!boundary) {
    // One "word" longer than a whole piece (a URL, base64): cut it where it must be cut.
    const out: string[] = [];
    for (let i = 0; i < text.length; i += max) out.push(text.slice(i, i + max));
    return out;
  }
  const parts = text
    .split(boundary.split)
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length <= 1) return splitAt(text, max, level + 1);
  return pack(
    parts.flatMap((p) => splitAt(p, max, level + 1)),
    boundary.join,
    max,
  );
}

/** Greedily joins consecutive parts while the result stays within `max`. */
export function pack(parts: readonly string[], joiner: string, max: number): string[] {
  const out: string[] = [];
  let current: string | null = null;
  for (const part of parts) {
    if (current === null) current = part;
    else if (current.length + joiner.length + part.length <= max) current += joiner + part;
    else {
      out.push(current);
      current = part;
    }
  }
  if (current !== null) out.push(current);
  return out;
}

// ---- audio -------------------------------------------------------------------------------------------------------

export interface AudioWindow {
  index: number;
  /** Seconds into the recording where the cut starts. */
  start: number;
  /** Where it ends, overlap included. */
  end: number;
}

/**
 * Fixed windows of `windowSec`, each running `overlapSec` into the next. A remainder shorter than two overlaps is
 * added to the last window rather than sent on its own.
 */
export function planAudioWindows(durationSec: number, windowSec: number, overlapSec: number): AudioWindow[] {
  if (durationSec <= windowSec + overlapSec) return [{ index: 0, start: 0, end: durationSec }];
  let count = Math.ceil(durationSec / windowSec);
  if (durationSec - (count - 1) * windowSec < 2 * overlapSec) count -= 1;
  const windows: AudioWindow[] = [];
  for (let i = 0; i < count; i++) {
    const start = i * windowSec;
    const end = i === count - 1 ? durationSec : Math.min(durationSec, start + windowSec + overlapSec);
    windows.push({ index: i, start, end });
  }
  return windows;
}

export interface ChunkTranscript {
  window: AudioWindow;
  /** Timed from the start of the chunk, or null when the server gave text only. */
  segments: TranscriptSegment[] | null;
  text: string;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/**
 * Joins chunk transcripts into one timeline. Each chunk owns the time from the middle of the overlap before it to
 * the middle of the overlap after it; a segment belongs to the chunk that owns its midpoint, so a stretch heard
 * twice is kept once. Words repeated across the cut (a segment split by it) are dropped from the later segment.
 */
export function mergeChunkTranscripts(
  chunks: readonly ChunkTranscript[],
  overlapSec: number,
  durationSec: number,
): TranscriptSegment[] {
  const merged: TranscriptSegment[] = [];
  chunks.forEach((chunk, i) => {
    const next = chunks[i + 1];
    const ownStart = i === 0 ? 0 : chunk.window.start + overlapSec / 2;
    const ownEnd = next ? next.window.start + overlapSec / 2 : Infinity;
    const timed =
      chunk.segments ??
      (chunk.text.trim()
        ? [{ start: ownStart - chunk.window.start, end: Math.min(ownEnd, chunk.window.end), text: chunk.text }]
        : []);
    let first = true;
    for (const seg of timed) {
      const start = seg.start + chunk.window.start;
      const end = chunk.segments ? seg.end + chunk.window.start : seg.end;
      const mid = (start + end) / 2;
      if (mid < ownStart || mid >= ownEnd) continue;
      let text = seg.text.trim();
      const prev = merged.at(-1);
      if (first && i > 0 && prev) text = dropRepeatedWords(prev.text, text);
      first = false;
      if (!text) continue;
      const from = Math.max(start, prev?.end ?? 0);
      const to = Math.min(Math.max(end, from), durationSec);
      merged.push({ start: round3(Math.min(from, to)), end: round3(to), text });
    }
  });
  return merged;
}

const norm = (w: string): string => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');

/** `next` without its first words when they repeat the last words of `prev` (two words at least, twelve at most). */
export function dropRepeatedWords(prev: string, next: string): string {
  const a = prev.split(/\s+/).filter(Boolean);
  const b = next.split(/\s+/).filter(Boolean);
  for (let n = Math.min(12, a.length, b.length); n >= 2; n--) {
    const tail = a.slice(-n).map(norm);
    const head = b.slice(0, n).map(norm);
    if (tail.every((w, k) => w !== '' && w === head[k])) return b.slice(n).join(' ');
  }
  return next.trim();
}
