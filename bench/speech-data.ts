/**
 * The recordings with reference transcripts that Debian's `pocketsphinx-testdata` ships, and the word error rate
 * against them: shared by the speech evaluation (`npm run eval:speech`) and the PocketSphinx tests.
 */
import fs from 'node:fs';
import path from 'node:path';

export const TESTDATA = '/usr/share/pocketsphinx/test/data';
export const RAW_16K = ['-f', 's16le', '-ar', '16000', '-ac', '1'];

export interface Clip {
  name: string;
  /** ffmpeg input arguments. */
  input: string[];
  reference: string;
}

/** `<s> ten of clubs </s> (001)` lines of a pocketsphinx-testdata transcription file, by utterance id. */
export function transcriptions(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(.*)\(([^()]+)\)\s*$/.exec(line.trim());
    if (m?.[1] && m[2]) out.set(m[2], m[1].replace(/<\/?s>/g, '').trim());
  }
  return out;
}

/** Every recording in pocketsphinx-testdata that comes with its transcript: 11 of them. */
export function testClips(): Clip[] {
  // goforward.raw has no transcription file; pocketsphinx's own tests expect exactly this hypothesis from it.
  const clips: Clip[] = [
    {
      name: 'goforward',
      input: [...RAW_16K, '-i', path.join(TESTDATA, 'goforward.raw')],
      reference: 'go forward ten meters',
    },
  ];
  for (const [folder, list] of [
    ['cards', 'cards.transcription'],
    ['librivox', 'transcription'],
  ] as const) {
    for (const [id, reference] of transcriptions(path.join(TESTDATA, folder, list))) {
      clips.push({ name: `${folder}-${id}`, input: ['-i', path.join(TESTDATA, folder, `${id}.wav`)], reference });
    }
  }
  return clips;
}

/** Lower-cased words; the recognizer's dictionary spells "mister" as "mr". */
export function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}'\s]/gu, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => (w === 'mr' ? 'mister' : w));
}

/** Word-level Levenshtein distance: substitutions, deletions and insertions turning `ref` into `hyp`. */
export function wordEdits(ref: string, hyp: string): { edits: number; words: number } {
  const r = words(ref);
  const h = words(hyp);
  let prev = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const row = [i];
    for (let j = 1; j <= h.length; j++) {
      const same = r[i - 1] === h[j - 1];
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (same ? 0 : 1)));
    }
    prev = row;
  }
  return { edits: prev[h.length] ?? 0, words: r.length };
}

export function wordErrorRate(ref: string, hyp: string): number {
  const { edits, words: n } = wordEdits(ref, hyp);
  return n === 0 ? (words(hyp).length === 0 ? 0 : 1) : edits / n;
}
