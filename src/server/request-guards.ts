/**
 * What any client may do to this server's connections, on every route: no query parameter comes twice, a request body
 * must keep arriving, and an answer given before the body was read closes the connection soon after.
 *
 * A body is held to a pace, as Apache's mod_reqtimeout does: every HTTP_BODY_MIN_BYTES_PER_SEC bytes that arrive buy
 * a second, and a body may fall behind that pace (or pause) by at most HTTP_BODY_TIMEOUT_MS. A large upload on a slow
 * but steady link goes through however long it takes (up to HTTP_REQUEST_TIMEOUT_MS); a body sent a byte at a time,
 * or one that stops, is cut off. The head of a request (HTTP_HEADERS_TIMEOUT_MS) and the whole request are Node's own
 * timeouts, set where the app is built.
 */
import { Socket } from 'node:net';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HttpLimits } from '../config.js';
import { body, HttpError } from './http.js';

/** Set on a request whose connection was cut for its pace: its handler's failure is the client's doing. */
const CUT = Symbol('cut for its pace');

export function wasCut(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { [CUT]?: boolean })[CUT] === true;
}

/** The app's hooks for these guards: `onRequest` and `onSend`, added before any route. */
export function requestGuards(limits: HttpLimits) {
  return {
    onRequest: async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
      // Every parameter of every route is one value; a repeated one arrives as an array, which no route expects.
      const repeated = Object.entries(req.query as Record<string, unknown>).find(([, v]) => Array.isArray(v));
      if (repeated)
        throw new HttpError(400, 'INVALID_INPUT', `the query parameter \`${repeated[0]}\` is given more than once`);
      holdToPace(req.raw, reply.raw, limits);
      await Promise.resolve();
    },
    onSend: async (req: FastifyRequest): Promise<void> => {
      if (!req.raw.complete) lingerThenClose(req.raw, Math.min(LINGER_MS, limits.bodyTimeoutMs));
      await Promise.resolve();
    },
  };
}

/** How long the rest of a body is read and thrown away after an early answer, at most (nginx's lingering_timeout). */
const LINGER_MS = 5000;

/**
 * An answer given before the body was read (a 401, a 413): Node reads the rest and throws it away, to keep the
 * connection for the next request, for as long as the client takes to send it. It may do so for `ms` (at the body's
 * pace), then the connection is closed. Not at once: a client still sending (fetch among them) would fail to write
 * and never read the answer; this is the lingering close of nginx and Apache.
 */
function lingerThenClose(req: IncomingMessage, ms: number): void {
  if (!onNetwork(req)) return;
  const timer = setTimeout(() => {
    if (!req.complete) req.socket.destroy();
  }, ms);
  timer.unref();
  const stop = (): void => clearTimeout(timer);
  req.once('end', stop);
  req.once('close', stop);
}

/** A request on a connection, not one injected in process (Fastify's inject has no socket to time or close). */
function onNetwork(req: IncomingMessage): boolean {
  return req.socket instanceof Socket;
}

/** Watches the body of `req` arrive, and cuts the connection when it falls too far behind the pace. */
function holdToPace(req: IncomingMessage, res: ServerResponse, limits: HttpLimits): void {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody || req.complete || !onNetwork(req)) return;
  const { bodyTimeoutMs, bodyMinBytesPerSec } = limits;
  const socket = req.socket;
  let allowance = bodyTimeoutMs;
  let seen = socket.bytesRead;
  let last = Date.now();
  const timer = setInterval(
    () => {
      if (req.complete || socket.destroyed) return stop();
      const now = Date.now();
      const arrived = socket.bytesRead - seen;
      seen = socket.bytesRead;
      // Bytes this server has not read yet (its disk is busy, the request waits its turn): the client is not late.
      allowance =
        req.readableLength > 0
          ? bodyTimeoutMs
          : Math.min(bodyTimeoutMs, allowance - (now - last) + (arrived / bodyMinBytesPerSec) * 1000);
      last = now;
      if (allowance > 0) return;
      stop();
      cut(req, res, limits);
    },
    Math.min(1000, Math.max(50, Math.floor(bodyTimeoutMs / 4))),
  );
  timer.unref();
  const stop = (): void => clearInterval(timer);
  req.once('end', stop);
  req.once('close', stop);
}

/** Answers 408 when nothing was answered yet, and closes the connection (its handler then fails, as on a hang-up). */
function cut(req: IncomingMessage, res: ServerResponse, limits: HttpLimits): void {
  (req as IncomingMessage & { [CUT]?: boolean })[CUT] = true;
  const message =
    `the request body fell behind ${limits.bodyMinBytesPerSec} bytes per second by more than ` +
    `${limits.bodyTimeoutMs} ms (HTTP_BODY_MIN_BYTES_PER_SEC, HTTP_BODY_TIMEOUT_MS)`;
  answerAndClose(req.socket, res.headersSent, 408, 'TIMEOUT', message);
}

/**
 * Fastify's clientErrorHandler: what Node refuses before any route sees the request (a head or a whole request over
 * its time limit, headers too large, bytes that are not HTTP) is answered in this API's error format.
 */
export function clientErrorHandler(limits: HttpLimits) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    // The response of the request in progress, if it began: another answer on top of it would garble both.
    const answered = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage?.headersSent ?? false;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      const message =
        `the request's headers must arrive within ${limits.headersTimeoutMs} ms (HTTP_HEADERS_TIMEOUT_MS) and ` +
        `the whole request within ${limits.requestTimeoutMs} ms (HTTP_REQUEST_TIMEOUT_MS)`;
      answerAndClose(socket, answered, 408, 'TIMEOUT', message);
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      answerAndClose(socket, answered, 431, 'HEADERS_TOO_LARGE', 'the request headers are too large');
    } else {
      answerAndClose(socket, answered, 400, 'BAD_REQUEST', 'this is not an HTTP request this server understands');
    }
  };
}

/** Writes an error answer straight to the socket (unless one was begun) and closes it, reading nothing more. */
function answerAndClose(socket: Duplex, answered: boolean, status: number, code: string, message: string): void {
  if (!answered && socket.writable) {
    const json = JSON.stringify(body(code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}
