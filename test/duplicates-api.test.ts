/**
 * Duplicates through the service (queued steps, the HTTP API, the webhook): a second upload of a photo by the same
 * user lists the first in its document and in its webhook's payload; GET /jobs/:id/duplicates answers both ways and
 * GET /jobs?duplicates=true finds the job that lists some; deleting the first job takes it out of every answer.
 */
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TERMINAL_STATUSES, type JobDocument } from '../src/lib/types.js';
import { DuplicateList, JobDocumentSchema, JobList } from '../src/server/schemas.js';
import {
  CORPUS,
  dropPrefix,
  serviceOn,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  type ServiceProcess,
} from './helpers.js';

const prefix = uniquePrefix('duplicates-api');
const photo = path.join(CORPUS, 'image/portrait-exif-orientation-6.jpg');
let state: TestState;
let service: ServiceProcess;
let base: string;
let hooks: http.Server;
let hookUrl: string;
const delivered = new Map<string, JobDocument>();

beforeAll(async () => {
  hooks = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const doc = JSON.parse(body) as JobDocument;
      delivered.set(doc.id, doc);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hooks.address() as { port: number }).port}/hook`;
  state = await TestState.create('duplicates-api');
  ({ service, base } = await serviceOn(state, prefix, {
    INPUT_ROOTS: CORPUS,
    WEBHOOK_ALLOW_PRIVATE: 'true',
    DISABLED_STEPS: 'analyzeImage',
  }));
}, 90_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  hooks?.close();
});

async function submit(user: string): Promise<JobDocument> {
  const res = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: { path: photo }, user: { id: user }, notifyUrl: hookUrl }),
  });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as JobDocument).id;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const doc = JobDocumentSchema.parse(await (await fetch(`${base}/jobs/${id}`)).json()) as JobDocument;
    if (TERMINAL_STATUSES.includes(doc.status) && delivered.has(id)) return doc;
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish: ${JSON.stringify(doc)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('the later job lists the earlier in its document and webhook; both ways through the API; delete forgets', async () => {
  const first = await submit('u-dup');
  expect(first.status).toBe('completed');
  expect(first.results.perceptualHash?.kind).toBe('dhash');
  const second = await submit('u-dup');
  expect(second.results.duplicates).toEqual([{ jobId: first.id, kind: 'exact', distance: 0 }]);
  expect(delivered.get(second.id)!.results.duplicates).toEqual([{ jobId: first.id, kind: 'exact', distance: 0 }]);
  const other = await submit('u-other');
  expect(other.results.duplicates).toBeUndefined();

  const both = async (id: string) =>
    DuplicateList.parse(await (await fetch(`${base}/jobs/${id}/duplicates`)).json()).duplicates;
  expect(await both(first.id)).toEqual([{ jobId: second.id, kind: 'exact', distance: 0, relation: 'later' }]);
  expect(await both(second.id)).toEqual([{ jobId: first.id, kind: 'exact', distance: 0, relation: 'earlier' }]);
  expect((await fetch(`${base}/jobs/01NOSUCHJOB000000000000000/duplicates`)).status).toBe(404);

  const listed = JobList.parse(await (await fetch(`${base}/jobs?duplicates=true`)).json());
  expect(listed.jobs.map((j) => j.id)).toEqual([second.id]);
  const unlisted = JobList.parse(await (await fetch(`${base}/jobs?duplicates=false`)).json());
  expect(unlisted.jobs.map((j) => j.id).sort()).toEqual([first.id, other.id].sort());
  expect((await fetch(`${base}/jobs?duplicates=maybe`)).status).toBe(400);

  expect((await fetch(`${base}/jobs/${first.id}`, { method: 'DELETE' })).status).toBe(204);
  expect(await both(second.id)).toEqual([]);
});
