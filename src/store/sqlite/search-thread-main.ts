/**
 * A search thread: a read-only connection of its own to the SQLite file (WAL lets it read while others write), one
 * search at a time, answered to the store's SearchThreads.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SearchRefused } from '../job-store.js';
import { searcher, type SearchReply, type SearchRequest } from './search.js';

if (!parentPort) throw new Error('search-thread must run as a worker thread');
const port = parentPort;
// Below the main thread (the API, the orchestrator and its lock renewals) for the CPU: on Linux a thread has a nice
// value of its own. Elsewhere searches share the CPU evenly.
try {
  os.setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {
  // not Linux
}
const db = new Database((workerData as { file: string }).file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 10000');
const search = searcher(db);

port.on('message', (request: SearchRequest) => {
  let reply: SearchReply;
  try {
    reply = { page: search(request) };
  } catch (err) {
    reply =
      err instanceof SearchRefused
        ? { refused: { reason: err.reason, message: err.message } }
        : { error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
