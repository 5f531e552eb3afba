/**
 * Scanned documents and photos of text, made in the test: text drawn by librsvg (through sharp) into pixels, and
 * PDFs written here byte by byte, whose pages are either a JPEG image (a scan, no text layer) or lines of text in a
 * standard font (a text layer).
 */
import sharp from 'sharp';

/** Letter size in points. */
const PAGE = { width: 612, height: 792 };

/** A page: a scan (a JPEG of `width` x `height` pixels covering it) or lines of text; `size` in points. */
export type PageSpec = ({ scan: Buffer; width: number; height: number } | { lines: string[] }) & {
  size?: { width: number; height: number };
};

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escapePdf = (s: string): string => s.replace(/([\\()])/g, '\\$1');

/** Lines of prose, wrapped at `width` characters. */
export function wrap(text: string, width = 60): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * A page of text scanned at `dpi`: greyscale JPEG, 12 pt type; a Letter page with one-inch margins, or a label of
 * `size` points with a half-inch margin.
 */
export async function scanPage(
  lines: string[],
  dpi = 200,
  size?: { width: number; height: number },
): Promise<PageSpec> {
  const page = size ?? PAGE;
  const margin = size ? 36 : 72;
  const width = Math.round((page.width / 72) * dpi);
  const height = Math.round((page.height / 72) * dpi);
  const px = (pt: number): number => Math.round((pt / 72) * dpi);
  const text = lines
    .map((l, i) => `<text x="${px(margin)}" y="${px(margin + 24 + i * 18)}">${escapeXml(l)}</text>`)
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="white"/>
    <g font-family="DejaVu Serif" font-size="${px(12)}" fill="#111">${text}</g></svg>`;
  const scan = await sharp(Buffer.from(svg)).greyscale().jpeg({ quality: 85 }).toBuffer();
  return { scan, width, height, ...(size && { size }) };
}

/** A PDF of Letter pages (or of their own `size`): each a full-page JPEG (no text layer) or lines of Helvetica (a text layer). */
export function makePdf(pages: PageSpec[]): Buffer {
  const objects: Buffer[] = [];
  const add = (body: Buffer | string): number => {
    objects.push(typeof body === 'string' ? Buffer.from(body, 'latin1') : body);
    return objects.length;
  };
  const stream = (dict: string, data: Buffer): Buffer =>
    Buffer.concat([
      Buffer.from(`<< ${dict} /Length ${data.length} >>\nstream\n`, 'latin1'),
      data,
      Buffer.from('\nendstream', 'latin1'),
    ]);
  const catalog = add('');
  const tree = add('');
  const font = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  const kids: number[] = [];
  for (const spec of pages) {
    const size = spec.size ?? PAGE;
    let content: string;
    let resources: string;
    if ('scan' in spec) {
      const image = add(
        stream(
          `/Type /XObject /Subtype /Image /Width ${spec.width} /Height ${spec.height} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode`,
          spec.scan,
        ),
      );
      content = `q ${size.width} 0 0 ${size.height} 0 0 cm /Im0 Do Q`;
      resources = `<< /XObject << /Im0 ${image} 0 R >> >>`;
    } else {
      content = `BT /F1 12 Tf 18 TL 72 ${size.height - 96} Td ${spec.lines.map((l) => `(${escapePdf(l)}) Tj T*`).join(' ')} ET`;
      resources = `<< /Font << /F1 ${font} 0 R >> >>`;
    }
    const contents = add(stream('', Buffer.from(content, 'latin1')));
    kids.push(
      add(
        `<< /Type /Page /Parent ${tree} 0 R /MediaBox [0 0 ${size.width} ${size.height}] /Resources ${resources} /Contents ${contents} 0 R >>`,
      ),
    );
  }
  objects[catalog - 1] = Buffer.from(`<< /Type /Catalog /Pages ${tree} 0 R >>`, 'latin1');
  objects[tree - 1] = Buffer.from(
    `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`,
    'latin1',
  );
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let offset = parts[0]!.length;
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(offset);
    const obj = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`, 'latin1'), body, Buffer.from('\nendobj\n', 'latin1')]);
    parts.push(obj);
    offset += obj.length;
  });
  const xref = [
    'xref',
    `0 ${objects.length + 1}`,
    '0000000000 65535 f ',
    ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n `),
    'trailer',
    `<< /Size ${objects.length + 1} /Root ${catalog} 0 R >>`,
    'startxref',
    String(offset),
    '%%EOF',
  ].join('\n');
  parts.push(Buffer.from(`${xref}\n`, 'latin1'));
  return Buffer.concat(parts);
}

/**
 * A phone photo of a printed notice: cream paper on a darker table, turned a few degrees, a little blurred, grainy
 * and saved as JPEG.
 */
export async function noticePhoto(lines: string[]): Promise<Buffer> {
  const width = 1600;
  const height = 1200;
  const text = lines
    .map(
      (l, i) =>
        `<text x="180" y="${260 + i * 90}" font-size="${i === 0 ? 84 : 54}" font-weight="${i === 0 ? 'bold' : 'normal'}">${escapeXml(l)}</text>`,
    )
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="#5a4a3c"/>
    <rect x="100" y="100" width="${width - 200}" height="${height - 200}" fill="#efe2bf"/>
    <g font-family="DejaVu Sans" fill="#2a2320">${text}</g></svg>`;
  const turned = await sharp(Buffer.from(svg))
    .rotate(4, { background: '#5a4a3c' })
    .resize(width, height, { fit: 'cover' })
    .blur(0.8)
    .png()
    .toBuffer();
  const noise = await sharp({
    create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  })
    .png()
    .toBuffer();
  return sharp(turned)
    .composite([{ input: noise, blend: 'soft-light' }])
    .jpeg({ quality: 80 })
    .toBuffer();
}

/** The share of `expected`'s words (letters and digits, any case) that `got` holds, each counted as often as it appears. */
export function wordRecall(expected: string, got: string): number {
  const words = (s: string): string[] => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const have = new Map<string, number>();
  for (const w of words(got)) have.set(w, (have.get(w) ?? 0) + 1);
  const want = words(expected);
  let found = 0;
  for (const w of want) {
    const n = have.get(w) ?? 0;
    if (n > 0) {
      found += 1;
      have.set(w, n - 1);
    }
  }
  return want.length ? found / want.length : 0;
}
