/**
 * How close the offline summaries come to summaries written by people: the papers of the shared corpus against
 * their own abstracts, through the real pdf.js text extraction. Each paper is summarized twice: as a user would
 * upload it (the abstract is in the text), and with its abstract held out (the summary must find the content
 * elsewhere). Prints ROUGE-1 and ROUGE-L (F1 and recall, on lower-cased words).
 *
 *   npm run eval:summaries                          # this checkout's summarizer
 *   npm run eval:summaries -- --impl ../main/src/ai/extractive.ts   # another checkout's, to compare
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TextModel } from '../src/ai/types.js';
import { withPdf } from '../src/lib/pdf.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(ROOT, '..', 'shared', 'corpus');

/** Each paper and where its abstract starts and ends in the extracted text. */
const PAPERS = [
  { file: 'pdf/tracemonkey-paper.pdf', abstract: /\nAbstract\n([\s\S]+?)\nCategories and Subject/, heldOut: true },
  // Only its cover page has a usable text layer: no held-out run.
  { file: 'pdf/tam-review.pdf', abstract: /\nAbstract\n([\s\S]+?)\nKeywords:/, heldOut: false },
];

const tokens = (s: string): string[] => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

function rouge1(candidate: string[], reference: string[]): { f: number; r: number } {
  const counts = new Map<string, number>();
  for (const w of reference) counts.set(w, (counts.get(w) ?? 0) + 1);
  let overlap = 0;
  for (const w of candidate) {
    const n = counts.get(w) ?? 0;
    if (n > 0) {
      overlap++;
      counts.set(w, n - 1);
    }
  }
  return score(overlap, candidate.length, reference.length);
}

function rougeL(candidate: string[], reference: string[]): { f: number; r: number } {
  let prev = new Array<number>(reference.length + 1).fill(0);
  for (const c of candidate) {
    const row = [0];
    reference.forEach((w, j) => row.push(c === w ? (prev[j] ?? 0) + 1 : Math.max(prev[j + 1] ?? 0, row[j] ?? 0)));
    prev = row;
  }
  return score(prev[reference.length] ?? 0, candidate.length, reference.length);
}

function score(overlap: number, cand: number, ref: number): { f: number; r: number } {
  const p = cand ? overlap / cand : 0;
  const r = ref ? overlap / ref : 0;
  return { f: p + r ? (2 * p * r) / (p + r) : 0, r };
}

async function pdfText(file: string): Promise<string> {
  return withPdf(file, async (pdf) => {
    const result = await pdf.getText({ pageJoiner: '' });
    return result.pages.map((p) => p.text.trim()).join('\n\f\n');
  });
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--impl');
  const impl = i > 0 ? path.resolve(process.argv[i + 1] ?? '') : path.join(ROOT, 'src', 'ai', 'extractive.ts');
  const mod = (await import(pathToFileURL(impl).href)) as { createExtractiveText(): TextModel };
  const model = mod.createExtractiveText();
  const signal = new AbortController().signal;
  const rows: string[][] = [['document', 'input', 'words', 'R-1 F1', 'R-1 recall', 'R-L F1', 'R-L recall']];
  const sums = { r1: 0, rl: 0, n: 0 };
  for (const paper of PAPERS) {
    const text = await pdfText(path.join(CORPUS, paper.file));
    const match = paper.abstract.exec(text);
    if (!match?.[1]) throw new Error(`${paper.file}: no abstract found`);
    const reference = tokens(match[1].replace(/-\n(?=\p{Ll})/gu, ''));
    const inputs: [string, string][] = [['as uploaded', text]];
    if (paper.heldOut) inputs.push(['abstract held out', text.replace(match[0], '\n')]);
    for (const [label, input] of inputs) {
      const { summary } = await model.summarize({ text: input, source: 'text' }, { signal });
      const cand = tokens(summary);
      const r1 = rouge1(cand, reference);
      const rl = rougeL(cand, reference);
      sums.r1 += r1.f;
      sums.rl += rl.f;
      sums.n++;
      const f = (x: number): string => x.toFixed(3);
      rows.push([path.basename(paper.file), label, String(cand.length), f(r1.f), f(r1.r), f(rl.f), f(rl.r)]);
    }
  }
  rows.push(['mean', '', '', (sums.r1 / sums.n).toFixed(3), '', (sums.rl / sums.n).toFixed(3), '']);
  console.log(`summarizer: ${path.relative(process.cwd(), impl)} (${model.model})`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

await main();
