/**
 * The fuzzer's child: what `media-orchestrator process` does (createRuntime, then runner.run, then close), for one
 * case after another in one process, so 10,000 cases do not pay 10,000 Node starts, thread boots and library
 * loads. The driver watches it from outside: a case that outlives its limit, or a death of this process, is the
 * finding; nothing here judges the outcome.
 *
 * Messages (IPC): in `{type:'run', index, jobId, path, name}` and `{type:'close'}`; out `{type:'ready'}`,
 * `{type:'done', index, doc, ms}` and `{type:'threw', index, message}`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { JobDocument } from '../src/lib/types.js';
import { createRuntime } from '../src/runtime.js';

export type ChildRequest =
  { type: 'run'; index: number; jobId: string; path: string; name: string } | { type: 'close' };

export type ChildReply =
  | { type: 'ready' }
  | { type: 'done'; index: number; doc: JobDocument; ms: number }
  | { type: 'threw'; index: number; message: string };

if (!process.send) throw new Error('fuzz/child.ts runs under the fuzz driver, with an IPC channel');
const send = (reply: ChildReply): void => {
  process.send!(reply);
};

const config = loadConfig();
const runtime = await createRuntime(config, createLogger(config.logLevel));

async function run(req: Extract<ChildRequest, { type: 'run' }>): Promise<void> {
  const started = performance.now();
  try {
    const doc = await runtime.runner.run({ jobId: req.jobId, file: { path: req.path, name: req.name }, user: null });
    send({ type: 'done', index: req.index, doc, ms: Math.round(performance.now() - started) });
  } catch (err) {
    // `process` would print this and exit 1: the driver records it as a crash of the command.
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    send({ type: 'threw', index: req.index, message });
  } finally {
    // Thumbnails, posters and audio of 10,000 cases would fill the disk; the job documents stay (a few KiB each).
    fs.rmSync(path.join(config.artifactsDir, req.jobId), { recursive: true, force: true });
  }
}

async function close(): Promise<void> {
  await runtime.close();
  process.exit(0);
}

process.on('message', (req: ChildRequest) => {
  if (req.type === 'run') void run(req);
  else void close();
});
// The driver gone (killed, crashed): nobody will read our results.
process.on('disconnect', () => void close());
send({ type: 'ready' });
