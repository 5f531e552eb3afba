/**
 * Offline summaries: cleaned before they are ranked (notices, contents, running headers, references, hyphenated
 * words), complete sentences of the source only, a title from the PDF itself, a gist instead of a short text
 * pasted back, the text's language, and chapters of long transcripts at their topic changes. Real PDFs from the
 * corpus and PDFs made here, through the real pdf.js text extraction.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { chaptersOf } from '../src/ai/chapters.js';
import { summarizeExtractive } from '../src/ai/extractive.js';
import { detectLanguage, stopWords } from '../src/ai/language.js';
import { cleanDocument, splitSentences } from '../src/ai/text-clean.js';
import type { TranscriptSegment } from '../src/ai/types.js';
import { documentTitle, withPdf } from '../src/lib/pdf.js';
import { CORPUS, runCli, tempDir } from './helpers.js';
import type { JobDocument } from '../src/lib/types.js';

const dir = tempDir('summaries');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Each page's text as extractText stores it: pages joined by form feeds. */
async function pdfText(file: string): Promise<{ text: string; title: string | null }> {
  return withPdf(file, async (pdf) => {
    const result = await pdf.getText({ pageJoiner: '' });
    return { text: result.pages.map((p) => p.text.trim()).join('\n\f\n'), title: await documentTitle(pdf) };
  });
}

/** A PDF with Helvetica text: each page a list of lines in a font size, and optionally an info dictionary Title. */
function makePdf(file: string, pages: { size: number; text: string }[][], title?: string): void {
  const esc = (s: string): string => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const objects: string[] = [];
  const add = (body: string): number => objects.push(body);
  const catalog = add('<</Type /Catalog /Pages 2 0 R>>');
  const kids: number[] = [];
  add(''); // the page tree, written once its kids are known
  const font = add('<</Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding>>');
  for (const lines of pages) {
    let y = 800;
    const ops = lines.map(({ size, text }) => {
      y -= size * 1.5;
      return `BT /F1 ${size} Tf 40 ${y} Td (${esc(text)}) Tj ET`;
    });
    const stream = ops.join('\n');
    const content = add(`<</Length ${Buffer.byteLength(stream, 'latin1')}>>\nstream\n${stream}\nendstream`);
    kids.push(
      add(
        `<</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents ${content} 0 R ` +
          `/Resources <</Font <</F1 ${font} 0 R>>>>>>`,
      ),
    );
  }
  objects[1] = `<</Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length}>>`;
  const info = title ? add(`<</Title (${esc(title)})>>`) : null;
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj ${body} endobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  out += offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  out += `trailer <</Size ${objects.length + 1} /Root ${catalog} 0 R${info ? ` /Info ${info} 0 R` : ''}>>\n`;
  out += `startxref\n${xref}\n%%EOF\n`;
  fs.writeFileSync(file, Buffer.from(out, 'latin1'));
}

/** Lines of at most `width` characters, as a typesetter would break a paragraph (hyphenating one long word). */
function wrap(paragraph: string, width = 80): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of paragraph.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      // Split a long word across the line end, as justified text does.
      const room = width - line.length - 2;
      if (/^[a-z]{6,}$/.test(word) && room >= 2 && word.length - room >= 2) {
        lines.push(`${line} ${word.slice(0, room)}-`);
        line = word.slice(room);
        continue;
      }
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

const norm = (s: string): string =>
  s
    .replace(/(\p{L})-\s*\n\s*(\p{Ll})/gu, '$1$2')
    .replace(/\s+/g, ' ')
    .trim();

/** Notices and labels, written independently of the summarizer's own patterns. */
const NOTICE =
  /copyright|©|\(c\)|all rights reserved|permission|ISBN|ISSN|scanning, uploading|illegal|punishable|https?:|www\.|contents|printed in/i;

/** Every sentence of the summary is whole (terminal punctuation) and starts and ends as in the source. */
function expectSentencesOfSource(summary: string, source: string): void {
  const flat = norm(source);
  const sentences = splitSentences(summary);
  expect(sentences.length).toBeGreaterThan(0);
  for (const s of sentences) {
    expect(s, s).toMatch(/[.!?]["'’”)\]]*(\[\d+\])*$/);
    expect(s, s).toMatch(/^["'‘“(]?[\p{Lu}\p{N}]/u);
    const w = s.split(' ');
    expect(flat, s).toContain(w.slice(0, 6).join(' '));
    expect(flat, s).toContain(w.slice(-6).join(' '));
  }
}

const CHAPTERS = [
  'The lighthouse on the northern cape was built of granite blocks cut from the quarry behind the village. ' +
    'Its keeper climbed the spiral staircase every evening to light the lamp before the fishing boats returned. ' +
    'The lamp burned paraffin through a wick that had to be trimmed every four hours during the night. ' +
    'A great lens of polished glass prisms gathered the light of the lamp into a single beam over the sea. ' +
    'Ships passing the cape counted the flashes of the beam to know which lighthouse they were looking at. ' +
    'In storms the keeper also sounded a fog horn driven by compressed air from an engine in the cellar.',
  'The village below the lighthouse lived from fishing for herring and mackerel in the cold northern waters. ' +
    'Before dawn the fishermen loaded their nets into wooden boats and rowed out beyond the harbour wall. ' +
    'Their wives salted and smoked the catch in sheds along the quay and sold it to merchants from the town. ' +
    'A good season paid for new nets and boats, while a poor one left families in debt to the merchants. ' +
    'The herring arrived in enormous shoals each autumn, and the whole village worked day and night to land them.',
  'Winter closed the only road to the town for weeks, and the village depended on what it had stored. ' +
    'Families kept barrels of salted fish, sacks of oats and potatoes, and peat cut from the moor in summer. ' +
    'The school closed when the snow drifted higher than the doors and the children stayed by the fires. ' +
    'When the road opened again in spring, the first cart brought letters, flour and news from the town.',
];

/** Every page of a book's body carries the running header and its page number. */
const bodyPage = (n: number, lines: string[]) => [
  { size: 9, text: `THE KEEPER'S YEAR ${n}` },
  ...lines.map((text) => ({ size: 11, text })),
  { size: 9, text: `Harbour Press ${n}` },
];

describe('a book with front matter, contents, running headers and references', () => {
  const file = path.join(dir, 'book.pdf');
  const chapterLines = CHAPTERS.map((c) => wrap(c));
  makePdf(
    file,
    [
      [
        { size: 28, text: 'The Keeper of the Northern Light' },
        { size: 14, text: 'A Year on the Cape' },
      ],
      [
        { size: 9, text: 'Copyright (c) 2019 by A. Writer' },
        { size: 9, text: 'All rights reserved.' },
        { size: 9, text: 'ISBN 978-0-00-000000-0' },
        { size: 9, text: 'The scanning, uploading, and distribution of this book via the Internet or via any' },
        { size: 9, text: 'other means without the permission of the publisher is illegal and punishable by law.' },
        { size: 9, text: 'Please purchase only authorized electronic editions and do not participate in or' },
        { size: 9, text: 'encourage electronic piracy of copyrighted materials.' },
        { size: 9, text: 'Printed in the United Kingdom.' },
      ],
      [
        { size: 14, text: 'Contents' },
        { size: 11, text: '1 The Lighthouse 1' },
        { size: 11, text: '2 The Village 3' },
        { size: 11, text: '3 The Winter 5' },
        { size: 11, text: 'References 7' },
      ],
      bodyPage(1, ['1 The Lighthouse', ...(chapterLines[0] ?? [])]),
      bodyPage(2, ['2 The Village', ...(chapterLines[1] ?? [])]),
      bodyPage(3, ['3 The Winter', ...(chapterLines[2] ?? [])]),
      bodyPage(4, [
        'References',
        'Smith, J. (1990). Lighthouses of the North. Harbour Press, London.',
        'Jones, K. (2001). Herring and the Northern Villages. Sea Books, Aberdeen.',
        'Brown, L. (1985). Winter Roads. Journal of Rural Studies, 4(2), 11-29.',
      ]),
    ],
    'The Keeper of the Northern Light',
  );

  test('the summary is whole sentences of the chapters: no notice, contents, header or reference', async () => {
    const { text, title } = await pdfText(file);
    expect(text).toContain('scanning, uploading'); // the notice is there to be left out
    expect(title).toBe('The Keeper of the Northern Light');
    // What is ranked: the chapters' prose, without the notice, the contents, the running header and footer, the
    // reference list.
    const kept = cleanDocument(text)
      .blocks.map((b) => b.text)
      .join('\n');
    expect(kept).toContain('The lighthouse on the northern cape');
    expect(kept).toContain('news from the town.');
    expect(kept).not.toMatch(NOTICE);
    expect(kept).not.toMatch(/KEEPER'S YEAR|Harbour Press|The Village 3|Smith, J\.|Winter Roads/);
    const result = summarizeExtractive({ text, source: 'text', title: title ?? undefined });
    expect(result.title).toBe('The Keeper of the Northern Light');
    expect(result.language).toBe('en');
    expectSentencesOfSource(result.summary, text);
    expect(result.summary).not.toMatch(NOTICE);
    expect(result.summary).not.toMatch(/KEEPER'S YEAR|Harbour Press|Smith, J\.|Lighthouses of the North|Winter Roads/);
    // Words hyphenated at a line's end come back whole.
    expect(text).toMatch(/\p{L}-\n/u);
    expect(result.summary).not.toMatch(/\p{L}- \p{Ll}/u);
    // The headings are the key points.
    expect(result.keyPoints).toEqual(['The Lighthouse', 'The Village', 'The Winter']);
  });

  test('without an info Title, the first page’s largest line is the title', async () => {
    const untitled = path.join(dir, 'untitled.pdf');
    makePdf(untitled, [
      [
        { size: 10, text: 'Working notes, draft' },
        { size: 24, text: 'Northern Light Keeping' },
        { size: 11, text: 'The lamp burned paraffin through a wick that had to be trimmed.' },
      ],
    ]);
    expect((await pdfText(untitled)).title).toBe('Northern Light Keeping');
  });
});

describe('real papers through pdf.js', () => {
  test('a job: the PDF step passes the title on, the summary step uses it', { timeout: 300_000 }, async () => {
    const file = path.join(CORPUS, 'pdf', 'tam-review.pdf');
    const res = await runCli(['process', '--json', file], { DATA_DIR: path.join(dir, 'data') }, 280_000);
    expect(res.code, res.stderr).toBe(0);
    const doc = JSON.parse(res.stdout) as JobDocument;
    const title = 'Overview of the Technology Acceptance Model: Origins, Developments and Future Directions';
    expect(doc.results.text?.title).toBe(title);
    expect(doc.results.summary).toMatchObject({ provider: 'local-extractive', title, language: 'en' });
    expect(doc.results.summary?.text).toMatch(/^User acceptance of technology/);
  });

  test('TraceMonkey: the title from the first page, a summary that covers the abstract, no notice', async () => {
    const { text, title } = await pdfText(path.join(CORPUS, 'pdf', 'tracemonkey-paper.pdf'));
    // Its info dictionary has no Title: the largest line of page 1 is the title.
    expect(title).toBe('Trace-based Just-in-Time Type Specialization for Dynamic Languages');
    const result = summarizeExtractive({ text, source: 'text', title: title ?? undefined });
    expectSentencesOfSource(result.summary, text);
    expect(result.summary).not.toMatch(NOTICE);
    expect(result.summary).not.toMatch(/PLDI|Dublin|Mozilla Corporation|Andreas Gal/);
    const abstract = norm(/Abstract\n([\s\S]+?)\nCategories and Subject/.exec(text)?.[1] ?? '');
    expect(abstract.length).toBeGreaterThan(500);
    expect(rouge1Recall(result.summary, abstract)).toBeGreaterThan(0.5);
    expect(result.keyPoints).toContain('Trace Trees');
    expect(result.keyPoints).not.toContain('References');
  });

  test('TAM review: the title from the info dictionary, the abstract not its cover page', async () => {
    const { text, title } = await pdfText(path.join(CORPUS, 'pdf', 'tam-review.pdf'));
    expect(title).toBe('Overview of the Technology Acceptance Model: Origins, Developments and Future Directions');
    const result = summarizeExtractive({ text, source: 'text' });
    expectSentencesOfSource(result.summary, text);
    expect(result.summary).not.toMatch(NOTICE);
    expect(result.summary).not.toMatch(/Working Papers|Indiana University|Sprouts|Keywords/);
    expect(result.summary).toMatch(/Technology Acceptance Model|technology/);
  });
});

/** Share of the reference's distinct words found in the candidate. */
function rouge1Recall(candidate: string, reference: string): number {
  const toks = (s: string) => new Set(s.toLowerCase().match(/\p{L}+/gu) ?? []);
  const c = toks(candidate);
  const r = [...toks(reference)];
  return r.filter((w) => c.has(w)).length / r.length;
}

describe('sentences', () => {
  test('"PDF.js", "e.g.", decimals, URLs, initials and citation marks do not end a sentence', () => {
    const text =
      'PDF.js is built into Firefox, e.g. since version 19, and renders 3.5 pages per second on https://mozilla.github.io/pdf.js/ today. ' +
      'It was enabled by default in Firefox 100.[5][6] J. Smith wrote about it (see Fig. 2). Does it work? Yes!';
    expect(splitSentences(text)).toEqual([
      'PDF.js is built into Firefox, e.g. since version 19, and renders 3.5 pages per second on https://mozilla.github.io/pdf.js/ today.',
      'It was enabled by default in Firefox 100.[5][6]',
      'J. Smith wrote about it (see Fig. 2).',
      'Does it work?',
      'Yes!',
    ]);
  });

  test('a word hyphenated at a line end is joined; a hyphenated compound mid-line is kept', () => {
    const { blocks } = cleanDocument('Dynamic languages are difficult to com-\npile with just-in-time compilers.');
    expect(blocks.map((b) => b.text)).toEqual([
      'Dynamic languages are difficult to compile with just-in-time compilers.',
    ]);
  });
});

describe('short texts and transcripts', () => {
  // What PocketSphinx writes for a 28 s recording: no punctuation, timed segments.
  const transcript: TranscriptSegment[] = [
    { start: 0, end: 7.2, text: 'the family of dashwood had long been settled in sussex their estate was large' },
    { start: 7.6, end: 14.1, text: 'and their residence was at norland park in the centre of their property' },
    { start: 14.5, end: 21, text: 'where for many generations they had lived in so respectable a manner' },
    { start: 21.3, end: 28, text: 'as to engage the general good opinion of their surrounding acquaintance' },
  ];
  const text = transcript.map((s) => s.text).join(' ');

  test('a 28 s transcript gets a one-sentence gist, not itself', () => {
    const result = summarizeExtractive({ text, source: 'transcript', segments: transcript });
    expect(result.summary).not.toBe(text);
    expect(result.summary.length).toBeLessThan(text.length * 0.6);
    expect(splitSentences(result.summary)).toHaveLength(1);
    expect(result.summary).toMatch(/^\p{Lu}.*\.$/u);
    expect(result.chapters).toEqual([]);
  });

  test('a short punctuated text gets one of its sentences; a single sentence gets nothing', () => {
    const short =
      'The meeting moved to Thursday because the hall was booked. Bring the budget figures for the new roof. ' +
      'Coffee will be served at ten in the small room.';
    const result = summarizeExtractive({ text: short, source: 'text' });
    expect(splitSentences(result.summary)).toHaveLength(1);
    expect(short).toContain(result.summary);
    expect(
      summarizeExtractive({ text: 'The meeting moved to Thursday because the hall was booked.', source: 'text' })
        .summary,
    ).toBe('');
  });
});

describe('language', () => {
  const fr =
    'Le phare du cap nord a été construit avec des blocs de granit taillés dans la carrière derrière le village. ' +
    'Son gardien montait chaque soir l’escalier pour allumer la lampe avant le retour des bateaux de pêche. ' +
    'Les navires qui passaient devant le cap comptaient les éclats du faisceau pour savoir quel phare ils voyaient. ' +
    'Pendant les tempêtes, le gardien faisait aussi sonner une corne de brume mue par de l’air comprimé. ' +
    'Le village vivait de la pêche au hareng et au maquereau dans les eaux froides du nord.';

  test('French, German, Spanish and English are told apart; Arabic by its script', () => {
    expect(detectLanguage(fr)).toBe('fr');
    expect(detectLanguage(CHAPTERS.join(' '))).toBe('en');
    expect(
      detectLanguage(
        'Der Leuchtturm wurde aus Granit gebaut, und der Wärter stieg jeden Abend die Treppe hinauf, um die Lampe zu entzünden.',
      ),
    ).toBe('de');
    expect(
      detectLanguage(
        'El faro del cabo norte fue construido con bloques de granito y el guardián subía cada tarde para encender la lámpara.',
      ),
    ).toBe('es');
    expect(detectLanguage('كان الحارس يصعد الدرج كل مساء ليشعل المصباح قبل عودة قوارب الصيد')).toBe('ar');
  });

  test('a French text is ranked with French stop words and says so', () => {
    const result = summarizeExtractive({ text: fr, source: 'text' });
    expect(result.language).toBe('fr');
    expect(stopWords('fr').has('les')).toBe(true);
    expect(stopWords('fr').has('the')).toBe(false);
    expectSentencesOfSource(result.summary, fr);
  });
});

describe('chapters', () => {
  /** Segments of about 6 s, one sentence each, the topics one after another; returns the joins' times. */
  function recording(topics: string[][]): { segments: TranscriptSegment[]; joins: number[] } {
    const segments: TranscriptSegment[] = [];
    const joins: number[] = [];
    let t = 0;
    topics.forEach((sentences, k) => {
      if (k > 0) joins.push(t);
      for (const s of sentences) {
        const dur = Math.max(3, s.split(' ').length * 0.4);
        segments.push({ start: t, end: t + dur, text: s });
        t += dur + 0.3;
      }
    });
    return { segments, joins };
  }
  const sentencesOf = (c: string): string[] => splitSentences(c);

  test('a three-minute recording of three topics is cut within 15 s of each join, with titles', () => {
    const topics = CHAPTERS.map(sentencesOf).map((s) => [...s, ...s.slice(0, 4)]);
    const { segments, joins } = recording(topics);
    const duration = segments.at(-1)?.end ?? 0;
    expect(duration).toBeGreaterThan(150);
    const chapters = chaptersOf(segments, stopWords('en'));
    expect(chapters[0]?.start).toBe(0);
    expect(chapters).toHaveLength(3);
    chapters.slice(1).forEach((c, k) => expect(Math.abs(c.start - (joins[k] ?? 0))).toBeLessThanOrEqual(15));
    for (const c of chapters) expect(c.title).toMatch(/^\p{Lu}\p{L}+/u);
    expect(chapters[0]?.title).toMatch(/lamp|keeper|lighthouse|beam|cape/i);
  });

  test('a recording under two minutes has none', () => {
    const { segments } = recording([sentencesOf(CHAPTERS[0] ?? '')]);
    expect(segments.at(-1)?.end ?? 0).toBeLessThan(120);
    expect(chaptersOf(segments, stopWords('en'))).toEqual([]);
  });
});
