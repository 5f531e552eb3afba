/**
 * Resource limits that hold, in the in-process `process` mode too: a small PDF whose one page inflates to tens of
 * millions of characters fails its step with RESOURCE_LIMIT when the step thread reaches its heap ceiling, and the
 * process lives to print the job; a document with more text than MAX_TEXT_CHARS is cut there and says so; a PDF
 * with more pages than MAX_PDF_PAGES (a tiny page tree can claim a million) is refused before any page is read.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { runCli, tempDir } from './helpers.js';

let dir: string;

/** A one-page PDF whose Flate-compressed content stream shows the same line `lines` times. */
function textBomb(file: string, lines: number): void {
  const unit = 'BT /F1 12 Tf 72 720 Td (AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA) Tj ET\n';
  const stream = zlib.deflateSync(Buffer.from(unit.repeat(lines)), { level: 9 });
  const objects = [
    Buffer.from('<< /Type /Catalog /Pages 2 0 R >>'),
    Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>'),
    Buffer.from(
      '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    ),
    Buffer.concat([
      Buffer.from(`<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n`),
      stream,
      Buffer.from('\nendstream'),
    ]),
    Buffer.from('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'),
  ];
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n')];
  let offset = parts[0]!.length;
  const offsets: number[] = [];
  for (const [i, body] of objects.entries()) {
    const chunk = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), body, Buffer.from('\nendobj\n')]);
    offsets.push(offset);
    offset += chunk.length;
    parts.push(chunk);
  }
  const xref = [`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`];
  for (const o of offsets) xref.push(`${String(o).padStart(10, '0')} 00000 n \n`);
  xref.push(`trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${offset}\n%%EOF\n`);
  parts.push(Buffer.from(xref.join('')));
  fs.writeFileSync(file, Buffer.concat(parts));
}

/**
 * A PDF whose page tree has `levels` levels of `fan` kids, every kid of a level the same object: fan^levels pages
 * claimed, all of them one page object. Distinct pages instead (`distinct`): one level of `fan` page objects.
 */
function pageTree(file: string, fan: number, levels: number, distinct = false): void {
  const content = 'BT /F1 12 Tf 10 50 Td (page) Tj ET';
  const objects: string[] = ['<< /Type /Catalog /Pages 2 0 R >>'];
  const font = distinct ? 4 + fan : 3 + levels + 1;
  const contents = font - 1;
  const page = (parent: number): string =>
    `<< /Type /Page /Parent ${parent} 0 R /MediaBox [0 0 200 100] /Contents ${contents} 0 R ` +
    `/Resources << /Font << /F1 ${font} 0 R >> >> >>`;
  if (distinct) {
    const kids = Array.from({ length: fan }, (_, i) => `${3 + i} 0 R`).join(' ');
    objects.push(`<< /Type /Pages /Kids [${kids}] /Count ${fan} >>`);
    for (let i = 0; i < fan; i++) objects.push(page(2));
  } else {
    for (let l = 0; l < levels; l++) {
      const kid = `${3 + l} 0 R`;
      const parent = l === 0 ? '' : ` /Parent ${1 + l} 0 R`;
      objects.push(
        `<< /Type /Pages${parent} /Kids [${Array(fan).fill(kid).join(' ')}] /Count ${fan ** (levels - l)} >>`,
      );
    }
    objects.push(page(1 + levels));
  }
  objects.push(`<< /Length ${content.length} >>\nstream\n${content}\nendstream`);
  objects.push('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  for (const [i, body] of objects.entries()) {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  }
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  out += offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  fs.writeFileSync(file, out, 'latin1');
}

beforeAll(() => {
  dir = tempDir('limits');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function processFile(file: string, env: Record<string, string>): Promise<{ code: number; doc: JobDocument }> {
  const res = await runCli(['process', file, '--json'], { DATA_DIR: path.join(dir, 'data'), ...env }, 540_000);
  expect(res.stdout, res.stderr.slice(-2000)).not.toBe('');
  return { code: res.code, doc: JSON.parse(res.stdout) as JobDocument };
}

test(
  'a decompression bomb fails its step with RESOURCE_LIMIT, and the process survives',
  { timeout: 600_000 },
  async () => {
    const bomb = path.join(dir, 'bomb.pdf');
    textBomb(bomb, 400_000); // about 110 KB on disk, 32 MB of content stream, 20 million characters of text
    expect(fs.statSync(bomb).size).toBeLessThan(200_000);
    // A low ceiling keeps the test quick: pdf.js reaches it opening the page (validate) or reading its text. The
    // preview renders the same page beside extractText, drawing 20 million characters until its own time limit (3 min),
    // which this test shortens: it is about memory, and the job has failed whatever the preview does.
    const { code, doc } = await processFile(bomb, { STEP_MEMORY_MB: '128', STEP_TIMEOUTS: 'renderPreview=20000' });
    expect(code).toBe(2); // a job failed; the command itself did not
    expect(doc.status).toBe('failed');
    expect(doc.error?.code).toBe('RESOURCE_LIMIT');
    expect(['validate', 'extractText']).toContain(doc.error?.step);
    expect(doc.error?.message).toMatch(/STEP_MEMORY_MB=128/);
    // The same bytes would exhaust it again: not retried.
    expect(doc.steps[doc.error!.step!]).toMatchObject({ status: 'failed', attempts: 1 });
  },
);

test('text past MAX_TEXT_CHARS is cut there, and the result says so', { timeout: 300_000 }, async () => {
  const wordy = path.join(dir, 'wordy.pdf');
  textBomb(wordy, 20_000); // about a million characters on one page
  const { code, doc } = await processFile(wordy, { MAX_TEXT_CHARS: '100000' });
  expect(code).toBe(0);
  expect(doc.results.text).toMatchObject({ chars: 100_000, truncated: true, pagesRead: 1, pages: 1 });
  const text = fs.readFileSync(path.join(dir, 'data', 'artifacts', doc.id, 'text.txt'), 'utf8');
  expect(text.length).toBe(100_000);
});

test('a 1.4 KB PDF that claims a million pages is refused at validate: TOO_LARGE, naming MAX_PDF_PAGES', async () => {
  const claims = path.join(dir, 'million.pdf');
  pageTree(claims, 10, 6);
  expect(fs.statSync(claims).size).toBeLessThan(2000);
  // Short text limits: without the page limit the job would hold a document worker until extractText's limit.
  const { code, doc } = await processFile(claims, { STEP_TIMEOUTS: 'extractText=20000,renderPreview=20000' });
  expect(code).toBe(2);
  expect(doc.error).toMatchObject({ code: 'TOO_LARGE', step: 'validate' });
  expect(doc.error?.message).toMatch(/1000000 pages.*MAX_PDF_PAGES.*5000/);
  expect(doc.steps.validate).toMatchObject({ status: 'failed', attempts: 1 });
  expect(doc.fileType).toBe('pdf');
});

test('MAX_PDF_PAGES sets the limit; a page tree that lists one page twice is CORRUPT_FILE', async () => {
  const sixty = path.join(dir, 'sixty.pdf');
  pageTree(sixty, 60, 1, true);
  const over = await processFile(sixty, { MAX_PDF_PAGES: '50' });
  expect(over.doc.error).toMatchObject({ code: 'TOO_LARGE', step: 'validate' });
  expect(over.doc.error?.message).toMatch(/60 pages.*MAX_PDF_PAGES.*50/);

  // 100 pages claimed, one page object: under the limit, but a page tree no writer makes.
  const reused = path.join(dir, 'reused.pdf');
  pageTree(reused, 10, 2);
  const { code, doc } = await processFile(reused, {});
  expect(code).toBe(2);
  expect(doc.error).toMatchObject({ code: 'CORRUPT_FILE', step: 'extractText' });
  expect(doc.error?.message).toMatch(/one page object as page 1 and page 2/);
  expect(doc.steps.extractText).toMatchObject({ status: 'failed', attempts: 1 });
});
