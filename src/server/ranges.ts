/**
 * HTTP range requests (RFC 9110 §14) on files: one range per request, what a `<video>` element asks for when it
 * seeks. Several ranges in one request (multipart/byteranges) are answered with the whole file, as the RFC allows.
 */
import { createReadStream } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The bytes `header` asks for in a file of `size` bytes: `null` for the whole file, `'unsatisfiable'` for none. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Another unit, several ranges, or a malformed header: ignored, the whole file is sent.
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    // The last n bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** Sends `file` (`size` bytes): 206 with the range asked for, 416 for a range past its end, else 200 with all of it. */
export function sendFileRange(
  req: FastifyRequest,
  reply: FastifyReply,
  file: string,
  size: number,
  contentType: string,
): FastifyReply {
  reply
    .header('content-type', contentType)
    .header('accept-ranges', 'bytes')
    .header('cache-control', 'private, max-age=3600')
    .header('x-content-type-options', 'nosniff');
  const range = parseRange(req.headers.range, size);
  if (range === 'unsatisfiable')
    return reply.status(416).header('content-range', `bytes */${size}`).header('content-length', 0).send('');
  if (range === null) return reply.header('content-length', size).send(createReadStream(file));
  return reply
    .status(206)
    .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
    .header('content-length', range.end - range.start + 1)
    .send(createReadStream(file, { start: range.start, end: range.end }));
}
