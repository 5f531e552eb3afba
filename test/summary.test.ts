/**
 * The offline summarizer on real papers: the summary is about the paper, not its cover page (copyright and
 * permission notices, links, running headers, the title block glued to the abstract).
 */
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { createExtractiveText } from '../src/ai/extractive.js';
import { cleanDocument, endsLikeSentence, splitSentences } from '../src/ai/text-clean.js';
import { withPdf } from '../src/lib/pdf.js';
import { parseSrt, toSrt, toVtt } from '../src/lib/subtitles.js';
import { CORPUS } from './helpers.js';

async function pdfText(name: string): Promise<string> {
  const pages = await withPdf(path.join(CORPUS, 'pdf', name), async (pdf) => {
    const result = await pdf.getText({ pageJoiner: '' });
    return result.pages.map((p) => p.text.trim());
  });
  return pages.join('\n\f\n');
}

const summarize = async (text: string) =>
  (await createExtractiveText().summarize({ text, source: 'text' }, { signal: new AbortController().signal })).summary;

const NOTICE = /copyright|permission|licen[cs]e|https?:|www\.|@|ISSN|Permanent URL|rights reserved/i;

describe('offline summaries', () => {
  test('the TraceMonkey paper: its subject, none of its notices', async () => {
    const summary = await summarize(await pdfText('tracemonkey-paper.pdf'));
    expect(summary).toMatch(/trac(e|ing)/i);
    expect(summary).toMatch(/loop|compil/i);
    expect(summary).not.toMatch(NOTICE);
    expect(summary).not.toMatch(/PLDI|Dublin|Andreas Gal|Mozilla Corporation/);
  });

  test('the TAM review: the abstract, not the cover page with its URL, licence and reference', async () => {
    const summary = await summarize(await pdfText('tam-review.pdf'));
    expect(summary).toMatch(/Technology Acceptance Model/);
    expect(summary).not.toMatch(NOTICE);
    expect(summary).not.toMatch(/Working Papers|Indiana University|Sprouts/);
    // Text that lost its spaces in the PDF (tables, figure labels) is no sentence.
    expect(summary).not.toMatch(/\p{L}{30,}/u);
  });

  test('boilerplate lines: repeated headers, labels with their continuation, titles', () => {
    const page = (n: number) =>
      `Journal of Things - http://example.org/9-37\nThe body of page ${n} says something about its subject.\n${n}\n`;
    const text = [
      'A Study of Things',
      'Jane Doe',
      'Abstract',
      'We study things in depth and report what we found.',
      'Reference: Doe J. (2009). "A Study of Things,"',
      'Journal of Things, 9(37).',
      '',
      page(1),
      page(2),
      page(3),
    ].join('\n');
    const kept = cleanDocument(text)
      .blocks.flatMap((b) => splitSentences(b.text))
      .filter(endsLikeSentence)
      .join(' ');
    expect(kept).toContain('We study things in depth');
    expect(kept).toContain('The body of page 2');
    expect(kept).not.toMatch(/A Study of Things|Jane Doe|Abstract|Reference|Journal of Things/);
  });
});

describe('subtitles', () => {
  test('segments to SRT and WebVTT and back', () => {
    const cues = [
      { start: 0, end: 2.5, text: 'Hello there.' },
      { start: 3661.042, end: 3663, text: 'An hour later -->\n\nstill talking' },
    ];
    const srt = toSrt(cues);
    expect(srt).toContain('00:00:00,000 --> 00:00:02,500');
    expect(srt).toContain('01:01:01,042 --> 01:01:03,000');
    expect(toVtt(cues)).toMatch(/^WEBVTT\n\n00:00:00\.000 --> 00:00:02\.500\nHello there\.\n/);
    // A cue's own text can never end the cue or fake a timing line.
    expect(parseSrt(srt)).toEqual([
      { start: 0, end: 2.5, text: 'Hello there.' },
      { start: 3661.042, end: 3663, text: 'An hour later ->\nstill talking' },
    ]);
  });
});
