/**
 * bin/media-orchestrator: the command line. Results go to stdout, logs to stderr.
 * Exit codes: 0 done, 2 a job failed, 1 the command itself failed, 3 `submit --wait`: a job waits for a review.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import type { Workflow } from '../graph/workflow.js';
import { UNSUCCESSFUL_STATUSES, type JobDocument, type ReviewDecision } from '../lib/types.js';
import type { Role } from '../service.js';
import type { Remote } from './remote.js';

// Each command imports what it needs when it runs (`await import`): `--help` or `status` does not load LangGraph,
// BullMQ, sharp and pdf.js first, which took most of two seconds.
const USAGE = `Usage: media-orchestrator <command> [options]

Commands:
  start [--role all|api|orchestrator|worker] [--queues light,image,video,document,ai,…]
                 Run the service: the orchestrator (consumes JOB_CREATED) and/or workers for the given
                 task queues (plugin steps' queues included). Stops gracefully on SIGTERM/SIGINT.
  submit <file…> [--wait] [--json] [--user ID] [--priority N] [--job-id ID] [--url URL]
         [--profile NAME] [--instructions JSON]
                 Publish JOB_CREATED for each file. --wait shows progress and waits for the results
                 (or for a job to stop for a review: exit 3); --json prints one job document per line,
                 in the order of the files. --profile and --instructions choose per-job settings (see
                 README, per-job instructions).
  status <id> [--json] [--url URL]
                 Print a job's document.
  cancel <id> [--url URL]
                 Cancel a job: waiting steps are removed, running ones stopped; it ends 'cancelled'.
  retry <id> [--url URL]
                 Re-run a finished job's failed steps (refused for a failure that cannot change).
  delete <id> [--url URL]
                 Delete a finished job: its document, checkpoints, upload and artifacts.
  review <id> approve|reject [--note TEXT] [--url URL]
                 Decide the review of a job awaiting_review: approve finishes it, reject ends it
                 'rejected'. The note (at most 2000 characters) is kept in the job's review.

  submit, status, cancel, retry, delete and review talk to the service's HTTP API when --url or MEDIA_ORCHESTRATOR_URL names it
  (API_TOKEN is sent as the bearer token; submit uploads the files), or when a service answers on
  127.0.0.1:PORT and none of REDIS_URL, QUEUE_PREFIX, DATA_DIR, DATABASE_URL is set here. Otherwise they
  use Redis and the job store directly. MEDIA_ORCHESTRATOR_URL=none turns the HTTP lookup off.
  process <file> [--json] [--job-id ID] [--user ID] [--sha256 HEX]
                 Run one job in this process (inline steps, no Redis) and print its job document.
                 A --job-id that was interrupted resumes from its last checkpoint; one that finished
                 prints its stored document. --sha256 fails the job with CHECKSUM_MISMATCH if the
                 file's hash differs.
  graph          Print the workflow graph as Mermaid (plugin steps included).
  steps [--json] List every step (built-in and PLUGINS): its queue, file types and the step it follows.
  webhook-secret Print the key that signs webhooks (WEBHOOK_SECRET, or the one generated into DATA_DIR),
                 for receivers that verify signatures.
  help           Show this help.

Exit codes: 0 done, 2 a job failed (failed, cancelled or rejected), 1 the command itself failed,
3 submit --wait: a job stopped to wait for a person's review (decide it with 'review').
Configuration comes from environment variables; see README.md.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'process':
      return processCommand(rest);
    case 'start':
      return startCommand(rest);
    case 'submit':
      return submitCommand(rest);
    case 'status':
      return statusCommand(rest);
    case 'cancel':
      return cancelCommand(rest);
    case 'retry':
    case 'delete':
      return jobCommandOf(command, rest);
    case 'review':
      return reviewCommand(rest);
    case 'graph': {
      const [{ toMermaid }, load] = await Promise.all([import('../graph/mermaid.js'), workflowOf()]);
      process.stdout.write(`${await toMermaid(await load())}\n`);
      return 0;
    }
    case 'steps':
      return stepsCommand(rest);
    case 'webhook-secret': {
      const [{ loadConfig }, { webhookSecret }] = await Promise.all([
        import('../config.js'),
        import('../queue/webhooks.js'),
      ]);
      process.stdout.write(`${webhookSecret(loadConfig())}\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`unknown command: ${command}\n\n${USAGE}\n`);
      return 1;
  }
}

async function processCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      'job-id': { type: 'string' },
      user: { type: 'string' },
      sha256: { type: 'string' },
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write('process takes exactly one file\n');
    return 1;
  }
  const file = path.resolve(positionals[0]!);
  const [{ loadConfig }, { createRuntime }, { createLogger }, { ulid }, { formatJob }] = await Promise.all([
    import('../config.js'),
    import('../runtime.js'),
    import('../lib/log.js'),
    import('ulid'),
    import('./format.js'),
  ]);
  const config = loadConfig();
  const runtime = await createRuntime(config, createLogger(config.logLevel));
  let doc: JobDocument;
  try {
    doc = await runtime.runner.run({
      jobId: values['job-id'] ?? ulid(),
      file: { path: file, name: path.basename(file), ...(values.sha256 ? { sha256: values.sha256 } : {}) },
      user: values.user ? { id: values.user } : null,
    });
  } finally {
    await runtime.close();
  }
  process.stdout.write(values.json ? `${JSON.stringify(doc, null, 2)}\n` : formatJob(doc));
  return UNSUCCESSFUL_STATUSES.includes(doc.status) ? 2 : 0;
}

async function startCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { role: { type: 'string', default: 'all' }, queues: { type: 'string' } },
  });
  const [{ loadConfig, QUEUE_NAMES }, { ROLES, startService }, { createLogger }] = await Promise.all([
    import('../config.js'),
    import('../service.js'),
    import('../lib/log.js'),
  ]);
  if (!(ROLES as readonly string[]).includes(values.role)) {
    process.stderr.write(`--role must be one of ${ROLES.join(', ')}\n`);
    return 1;
  }
  const config = loadConfig();
  // The plugins' queues are queues like the built-in ones: a worker may take only those (`--queues scan`).
  const workflow = await (await workflowOf())(config);
  const known = workflow.queues(QUEUE_NAMES);
  const queues = values.queues ? values.queues.split(',').map((q) => q.trim()) : known;
  const unknown = queues.filter((q) => !known.includes(q));
  if (unknown.length > 0 || queues.length === 0) {
    process.stderr.write(`unknown queues: ${unknown.join(', ') || '(none given)'} (known: ${known.join(', ')})\n`);
    return 1;
  }
  const log = createLogger(config.logLevel);
  const service = await startService(config, log, { role: values.role as Role, queues, workflow });
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      // A backstop: if draining hangs, exit anyway; interrupted jobs resume on the next start.
      setTimeout(() => {
        log.error('shutdown took too long; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs + 15_000).unref();
      service.stop().then(resolve, (err: unknown) => {
        log.error({ err }, 'error while shutting down');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

/** The workflow of this configuration (PLUGINS loaded): `loadWorkflow`, imported when a command needs it. */
async function workflowOf(): Promise<(config?: Config) => Promise<Workflow>> {
  const [{ loadConfig }, { loadWorkflow }] = await Promise.all([
    import('../config.js'),
    import('../graph/workflow.js'),
  ]);
  return (config) => loadWorkflow(config ?? loadConfig());
}

/** `steps [--json]`: every step, its queue, the file types it runs for and the step it follows. */
async function stepsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const steps = (await (await workflowOf())()).describe();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(steps, null, 2)}\n`);
    return 0;
  }
  const rows = [
    ['STEP', 'QUEUE', 'FILE TYPES', 'AFTER', 'ON FAILURE', 'FROM'],
    ...steps.map((s) => [
      s.name,
      s.queue,
      s.fileTypes.join(','),
      s.after.join(',') || '-',
      s.optional ? 'recorded' : 'job fails',
      s.module ?? 'built-in',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows)
    process.stdout.write(
      `${row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  return 0;
}

async function submitCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      user: { type: 'string' },
      priority: { type: 'string' },
      'job-id': { type: 'string' },
      url: { type: 'string' },
      profile: { type: 'string' },
      instructions: { type: 'string' },
    },
  });
  if (positionals.length === 0) {
    process.stderr.write('submit takes one or more files\n');
    return 1;
  }
  // Before anything is sent: a typo in a path is one line, not a stack trace, and no job of the batch is queued.
  const missing = positionals.filter((f) => !fs.statSync(f, { throwIfNoEntry: false })?.isFile());
  if (missing.length > 0) {
    process.stderr.write(`${missing.map((f) => `no such file: ${f}`).join('\n')}\n`);
    return 1;
  }
  const priority = values.priority === undefined ? undefined : Number(values.priority);
  if (priority !== undefined && (!Number.isInteger(priority) || priority < 0)) {
    process.stderr.write('--priority must be a whole number (1 is the highest, 0 or absent: no priority)\n');
    return 1;
  }
  // Checked here as the service checks them: a typo is reported now, not as a failed job.
  const { parseWishes } = await import('./submit-wishes.js');
  const wishes = parseWishes(values.instructions, values.profile);
  if (typeof wishes === 'string') {
    process.stderr.write(`${wishes}\n`);
    return 1;
  }
  const api = await remoteFor(values.url);
  if (api) {
    if (values['job-id']) {
      process.stderr.write('--job-id is not available through the HTTP API: the service names uploaded jobs\n');
      return 1;
    }
    const { submitRemote } = await import('./remote.js');
    const { wait, json, user } = values;
    return submitRemote(api, { files: positionals, wait, json, user, priority, ...wishes });
  }
  const [{ loadConfig }, { findRedis }, { submit }] = await Promise.all([
    import('../config.js'),
    import('../queue/redis-server.js'),
    import('./submit.js'),
  ]);
  const config = loadConfig();
  const redisUrl = await findRedis(config);
  return submit(config, redisUrl, {
    files: positionals,
    wait: values.wait,
    json: values.json,
    user: values.user,
    priority,
    jobId: values['job-id'],
    ...wishes,
  });
}

async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, url: { type: 'string' } },
  });
  const id = positionals[0];
  if (!id || positionals.length > 1) {
    process.stderr.write('status takes one job id\n');
    return 1;
  }
  const api = await remoteFor(values.url);
  const { formatJob } = await import('./format.js');
  let doc: JobDocument | null;
  if (api) doc = await api.getJob(id);
  else {
    const [{ loadConfig }, { findJob }] = await Promise.all([import('../config.js'), import('./jobs.js')]);
    doc = await findJob(loadConfig(), id);
  }
  if (!doc) {
    process.stderr.write(`no job ${id}\n`);
    return 1;
  }
  process.stdout.write(values.json ? `${JSON.stringify(doc, null, 2)}\n` : formatJob(doc));
  return UNSUCCESSFUL_STATUSES.includes(doc.status) ? 2 : 0;
}

async function cancelCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { url: { type: 'string' } } });
  const id = positionals[0];
  if (!id || positionals.length > 1) {
    process.stderr.write('cancel takes one job id\n');
    return 1;
  }
  const api = await remoteFor(values.url);
  if (api) {
    const { ok, message } = await api.cancel(id);
    (ok ? process.stdout : process.stderr).write(`${message}\n`);
    return ok ? 0 : 1;
  }
  const [{ loadConfig }, { findRedis }, { cancelJob }] = await Promise.all([
    import('../config.js'),
    import('../queue/redis-server.js'),
    import('./jobs.js'),
  ]);
  const config = loadConfig();
  const redisUrl = await findRedis(config);
  const result = await cancelJob(config, redisUrl, id);
  // Nothing cancelled (no such job, or it has ended) is an error, on stderr like status's.
  const done = result.found && !result.ended;
  (done ? process.stdout : process.stderr).write(`${result.message}\n`);
  return done ? 0 : 1;
}

/** `retry` and `delete`: through the HTTP API like the other job commands, else the job service on Redis and the store. */
async function jobCommandOf(command: 'retry' | 'delete', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { url: { type: 'string' } } });
  const id = positionals[0];
  if (!id || positionals.length > 1) {
    process.stderr.write(`${command} takes one job id\n`);
    return 1;
  }
  const api = await remoteFor(values.url);
  let result: { ok: boolean; message: string };
  if (api) result = command === 'retry' ? await api.retry(id) : await api.remove(id);
  else {
    const [{ loadConfig }, { findRedis }, { jobCommand }] = await Promise.all([
      import('../config.js'),
      import('../queue/redis-server.js'),
      import('./jobs.js'),
    ]);
    const config = loadConfig();
    result = await jobCommand(config, await findRedis(config), command, id);
  }
  (result.ok ? process.stdout : process.stderr).write(`${result.message}\n`);
  return result.ok ? 0 : 1;
}

/** `review <id> approve|reject [--note TEXT]`: as `POST /jobs/:id/review`, through the API or the job service. */
async function reviewCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { note: { type: 'string' }, url: { type: 'string' } },
  });
  const [id, decision] = positionals;
  if (!id || (decision !== 'approve' && decision !== 'reject') || positionals.length > 2) {
    process.stderr.write('review takes a job id and approve or reject: review <id> approve|reject [--note TEXT]\n');
    return 1;
  }
  if (values.note !== undefined && values.note.length > MAX_REVIEW_NOTE) {
    process.stderr.write(`--note is at most ${MAX_REVIEW_NOTE} characters\n`);
    return 1;
  }
  const asked: ReviewDecision = { decision, ...(values.note !== undefined && { note: values.note }) };
  const api = await remoteFor(values.url);
  let result: { ok: boolean; message: string };
  if (api) result = await api.review(id, asked);
  else {
    const [{ loadConfig }, { findRedis }, { jobCommand }] = await Promise.all([
      import('../config.js'),
      import('../queue/redis-server.js'),
      import('./jobs.js'),
    ]);
    const config = loadConfig();
    result = await jobCommand(config, await findRedis(config), 'review', id, asked);
  }
  (result.ok ? process.stdout : process.stderr).write(`${result.message}\n`);
  return result.ok ? 0 : 1;
}

/** The longest review note the service keeps (as the API's schema). */
const MAX_REVIEW_NOTE = 2000;

/**
 * The service's HTTP API when the command should use it (see remote.ts), else null. Reads only the environment: the
 * probe of a local service costs no configuration parsing.
 */
async function remoteFor(flag: string | undefined): Promise<Remote | null> {
  const [{ findRemote }, { remoteSettings }] = await Promise.all([import('./remote.js'), import('../config.js')]);
  return findRemote(flag, remoteSettings());
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // By name: the classes live in modules this file loads only when a command needs them.
    if (err instanceof Error && err.name === 'JobIdConflict') {
      // The job id names a job for another file: like a failed job, exit 2 (the existing job is untouched).
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    if (
      err instanceof Error &&
      ['ConfigError', 'PluginLoadError', 'RedisUnavailableError', 'RemoteError', 'NoOrchestratorError'].includes(
        err.name,
      )
    )
      process.stderr.write(`${err.message}\n`);
    else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    } else process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
