/**
 * What a client can do to the API's connections and inputs, against the app on a real port (slow clients need real
 * sockets) or through `app.inject`: headers and bodies that trickle are cut off while a slow but steady upload goes
 * through; an answer given before the body was read closes the connection; a repeated query parameter or multipart
 * field is refused with INVALID_INPUT; an upload that meets a full disk answers 507 and leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { closeApiParts, openApiParts } from '../src/server/api.js';
import { buildApp, type App } from '../src/server/app.js';
import type { ApiParts } from '../src/server/http.js';
import { dropPrefix, tempDir, TEST_REDIS_URL, uniquePrefix, waitFor } from './helpers.js';

const TOKEN = 'http-limits-token-0123456789';
const BOUNDARY = 'mo-http-limits-boundary';

interface Served {
  app: App;
  parts: ApiParts;
  port: number;
  dataDir: string;
  close(): Promise<void>;
}

/** The API in this process on its own data folder and queue prefix; `prepare` runs on the folder before it opens. */
async function serve(env: Record<string, string>, prepare?: (dataDir: string) => void): Promise<Served> {
  const dataDir = tempDir('http-limits');
  prepare?.(dataDir);
  const prefix = uniquePrefix('http-limits');
  const config = loadConfig({ DATA_DIR: dataDir, QUEUE_PREFIX: prefix, API_TOKEN: TOKEN, LOG_LEVEL: 'silent', ...env });
  const parts = await openApiParts(config, createLogger('silent'), TEST_REDIS_URL);
  const app = await buildApp(parts);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  return {
    app,
    parts,
    port,
    dataDir,
    async close() {
      await app.close();
      await closeApiParts(parts);
      await dropPrefix(TEST_REDIS_URL, prefix);
    },
  };
}

/** The head of a multipart upload of one file of `bytes` bytes, up to where the file's bytes begin. */
function uploadHead(bytes: number, headers: Record<string, string>): { head: string; tail: string } {
  const preamble =
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="slow.bin"\r\n` +
    'content-type: application/octet-stream\r\n\r\n';
  const tail = `\r\n--${BOUNDARY}--\r\n`;
  const lines = Object.entries({
    host: 'localhost',
    'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
    'content-length': String(Buffer.byteLength(preamble) + bytes + Buffer.byteLength(tail)),
    ...headers,
  }).map(([k, v]) => `${k}: ${v}\r\n`);
  return { head: `POST /jobs HTTP/1.1\r\n${lines.join('')}\r\n${preamble}`, tail };
}

interface SlowClient {
  /** Settles when the server closes the connection, with what it answered (empty when it answered nothing). */
  closed: Promise<string>;
  /** Stops sending and closes the connection from this side. */
  stop(): void;
}

/**
 * A client that sends `head`, then `chunk` every `everyMs` until `total` chunks are sent (then `end`), the server
 * closes the connection, or `stop()`.
 */
function slowClient(
  port: number,
  head: string,
  chunk: string,
  everyMs: number,
  total = Infinity,
  end = '',
): SlowClient {
  const socket = net.connect(port, '127.0.0.1');
  let answer = '';
  let sent = 0;
  socket.on('data', (d: Buffer) => (answer += d.toString()));
  socket.on('error', () => undefined);
  socket.write(head);
  const timer = setInterval(() => {
    if (socket.destroyed) return clearInterval(timer);
    if (sent >= total) {
      clearInterval(timer);
      socket.write(end);
      return;
    }
    socket.write(chunk);
    sent += 1;
  }, everyMs);
  const closed = new Promise<string>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve(answer);
    }),
  );
  return {
    closed,
    stop() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

/** What `client` answered once the server closed it, or 'still open' when it had not within `guardMs` (a hang guard). */
async function closedWithin(client: SlowClient, guardMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still open'), guardMs)));
  try {
    return await Promise.race([client.closed, guard]);
  } finally {
    clearTimeout(timer);
  }
}

const statusOf = (answer: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);

describe('slow clients', () => {
  let served: Served;

  beforeAll(async () => {
    served = await serve({
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      HTTP_BODY_TIMEOUT_MS: '1500',
      HTTP_BODY_MIN_BYTES_PER_SEC: '2000',
      HTTP_REQUEST_TIMEOUT_MS: '8000',
    });
  });

  afterAll(async () => {
    await served?.close();
    if (served) fs.rmSync(served.dataDir, { recursive: true, force: true });
  });

  test('bodies that trickle are cut off and their partial uploads removed', async () => {
    const { head } = uploadHead(100_000, { authorization: `Bearer ${TOKEN}` });
    // The attack: many connections, each sending its body a byte at a time.
    const clients = Array.from({ length: 20 }, () => slowClient(served.port, head, 'x', 200));
    try {
      const answers = await Promise.all(clients.map((c) => closedWithin(c, 20_000)));
      for (const answer of answers) {
        expect(answer).not.toBe('still open');
        expect(statusOf(answer)).toBe(408);
        expect(answer).toContain('"TIMEOUT"');
      }
    } finally {
      for (const c of clients) c.stop();
    }
    // Nothing of the cut uploads is kept, and no job was made.
    const uploads = path.join(served.dataDir, 'uploads');
    await waitFor('the partial uploads to be removed', () => fs.readdirSync(uploads).length === 0, 20_000);
    expect((await served.parts.stores.store.list({}, 10)).jobs).toEqual([]);
  });

  test('a body that stops for longer than HTTP_BODY_TIMEOUT_MS is cut off', async () => {
    const { head } = uploadHead(100_000, { authorization: `Bearer ${TOKEN}` });
    // A fast start (well over the minimum rate), then silence.
    const client = slowClient(served.port, head, 'x'.repeat(8_000), 50, 5);
    try {
      const answer = await closedWithin(client, 20_000);
      expect(answer).not.toBe('still open');
      expect(statusOf(answer)).toBe(408);
    } finally {
      client.stop();
    }
  });

  test('headers that trickle are cut off', async () => {
    const clients = Array.from({ length: 10 }, () =>
      slowClient(served.port, 'GET /healthz HTTP/1.1\r\nhost: localhost\r\n', 'x-slow: 1\r\n', 300),
    );
    try {
      const answers = await Promise.all(clients.map((c) => closedWithin(c, 20_000)));
      for (const answer of answers) expect(answer).not.toBe('still open');
    } finally {
      for (const c of clients) c.stop();
    }
  });

  test('an answer given before the body was read does not keep the connection (401 to a trickling upload)', async () => {
    const { head } = uploadHead(100_000, {});
    const clients = Array.from({ length: 20 }, () => slowClient(served.port, head, 'x', 200));
    try {
      const answers = await Promise.all(clients.map((c) => closedWithin(c, 20_000)));
      for (const answer of answers) {
        expect(answer).not.toBe('still open');
        expect(statusOf(answer)).toBe(401);
      }
    } finally {
      for (const c of clients) c.stop();
    }
  });

  test('a slow but steady upload, longer than the body timeout, goes through', async () => {
    const chunk = 'y'.repeat(16 * 1024);
    const chunks = 16;
    const { head, tail } = uploadHead(chunk.length * chunks, {
      authorization: `Bearer ${TOKEN}`,
      connection: 'close',
    });
    // 80 KiB/s: over three seconds, twice HTTP_BODY_TIMEOUT_MS.
    const client = slowClient(served.port, head, chunk, 200, chunks, tail);
    const answer = await closedWithin(client, 60_000).finally(() => client.stop());
    expect(statusOf(answer), answer).toBe(202);
    const id = /"id":"([^"]+)"/.exec(answer)?.[1];
    const stored = fs.readdirSync(path.join(served.dataDir, 'uploads', id!));
    expect(fs.statSync(path.join(served.dataDir, 'uploads', id!, stored[0]!)).size).toBe(chunk.length * chunks);
  });

  test('a request that takes longer than HTTP_REQUEST_TIMEOUT_MS in all is cut off', async () => {
    const chunk = 'z'.repeat(4 * 1024);
    const { head, tail } = uploadHead(chunk.length * 100, { authorization: `Bearer ${TOKEN}` });
    // 20 KiB/s: well over the minimum rate, but its 400 KiB would take 20 s.
    const client = slowClient(served.port, head, chunk, 200, 100, tail);
    try {
      const answer = await closedWithin(client, 30_000);
      expect(answer).not.toBe('still open');
      expect(statusOf(answer)).toBe(408);
    } finally {
      client.stop();
    }
  });
});

describe('repeated parameters', () => {
  let served: Served;

  beforeAll(async () => {
    served = await serve({});
  });

  afterAll(async () => {
    await served?.close();
    if (served) fs.rmSync(served.dataDir, { recursive: true, force: true });
  });

  test('a query parameter given twice is refused with INVALID_INPUT on every route, never a 500', async () => {
    const urls = [
      '/jobs?q=a&q=b',
      '/jobs?q=a&q=',
      '/jobs?status=queued&status=failed',
      '/jobs?fileType=image&fileType=pdf',
      '/jobs?user=a&user=b',
      '/jobs?cursor=a&cursor=b',
      '/jobs?limit=1&limit=2',
      '/jobs/some-job/events?lastEventId=1&lastEventId=2',
      '/jobs/some-job?x=1&x=2',
      '/summary?a=1&a=2',
    ];
    for (const url of urls) {
      const res = await served.app.inject({ url });
      expect(res.statusCode, url).toBe(400);
      const { error } = res.json<{ error: { code: string; message: string } }>();
      expect(error.code, url).toBe('INVALID_INPUT');
      expect(error.message, url).toMatch(/more than once/);
    }
  });

  test('a repeated or JSON-typed multipart field is refused with INVALID_INPUT, and nothing is stored', async () => {
    const part = (name: string, value: string, type?: string) =>
      `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${name}"\r\n` +
      `${type ? `content-type: ${type}\r\n` : ''}\r\n${value}\r\n`;
    const file = `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nbytes\r\n`;
    const bodies = {
      'userId twice': part('userId', 'a') + part('userId', 'b') + file,
      'priority twice': part('priority', '1') + part('priority', '9') + file,
      'priority as JSON': part('priority', '[5]', 'application/json') + file,
      'userId as JSON': part('userId', '{"id":"x"}', 'application/json') + file,
      'a JSON field that is not JSON': part('userId', '{', 'application/json') + file,
    };
    for (const [what, body] of Object.entries(bodies)) {
      const res = await served.app.inject({
        method: 'POST',
        url: '/jobs',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
        payload: `${body}--${BOUNDARY}--\r\n`,
      });
      expect(res.statusCode, what).toBe(400);
      expect(res.json<{ error: { code: string } }>().error.code, what).toBe('INVALID_INPUT');
    }
    expect(fs.readdirSync(path.join(served.dataDir, 'uploads'))).toEqual([]);
    expect((await served.parts.stores.store.list({}, 10)).jobs).toEqual([]);
  });
});

/** Whether this process may mount a tmpfs (root, and a kernel that allows it here). */
function canMountTmpfs(): boolean {
  const probe = tempDir('http-limits-probe');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

describe.skipIf(!canMountTmpfs())('a full disk', () => {
  let served: Served;
  let uploads: string;

  beforeAll(async () => {
    // The upload folder on a 2 MiB file system of its own: the store and everything else stay on the real disk.
    served = await serve({}, (dataDir) => {
      uploads = path.join(dataDir, 'uploads');
      fs.mkdirSync(uploads);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', uploads]);
    });
  });

  afterAll(async () => {
    await served?.close();
    if (uploads) execFileSync('umount', [uploads]);
    if (served) fs.rmSync(served.dataDir, { recursive: true, force: true });
  });

  const upload = async (bytes: number) => {
    const { head, tail } = uploadHead(bytes, {});
    const body = head.slice(head.indexOf('\r\n\r\n') + 4) + 'b'.repeat(bytes) + tail;
    return served.app.inject({
      method: 'POST',
      url: '/jobs',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      payload: body,
    });
  };

  test('an upload that does not fit answers 507 RESOURCE_LIMIT, keeps nothing, and the next one fits', async () => {
    const res = await upload(3 * 1024 * 1024);
    expect(res.statusCode, res.body).toBe(507);
    expect(res.json<{ error: { code: string } }>().error.code).toBe('RESOURCE_LIMIT');
    expect(fs.readdirSync(uploads)).toEqual([]);
    expect((await served.parts.stores.store.list({}, 10)).jobs).toEqual([]);
    // The space of the refused upload is free again.
    expect((await upload(512 * 1024)).statusCode).toBe(202);
  });
});
