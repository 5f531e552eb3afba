/**
 * bin/media-orchestrator: the command line. Results go to stdout, logs to stderr.
 * Exit codes: 0 done, 2 a job failed, 1 the command itself failed.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ulid } from 'ulid';
import { ConfigError, loadConfig } from '../config.js';
import { toMermaid } from '../graph/mermaid.js';
import { createLogger } from '../lib/log.js';
import type { JobDocument } from '../lib/types.js';
import { createRuntime } from '../runtime.js';
import { formatJob } from './format.js';

const USAGE = `Usage: media-orchestrator <command> [options]

Commands:
  process <file> [--json] [--job-id ID] [--user ID] [--sha256 HEX]
                 Run one job in this process (inline steps, no Redis) and print its job document.
                 A --job-id that was interrupted resumes from its last checkpoint; one that finished
                 prints its stored document. --sha256 fails the job with CHECKSUM_MISMATCH if the
                 file's hash differs.
  graph          Print the workflow graph as Mermaid.
  help           Show this help.

Exit codes: 0 done, 2 a job failed, 1 the command itself failed.
Configuration comes from environment variables; see README.md.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'process':
      return processCommand(rest);
    case 'graph':
      process.stdout.write(`${await toMermaid()}\n`);
      return 0;
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
  const config = loadConfig();
  const runtime = createRuntime(config, createLogger(config.logLevel));
  let doc: JobDocument;
  try {
    doc = await runtime.runner.run({
      jobId: values['job-id'] ?? ulid(),
      file: { path: file, name: path.basename(file), ...(values.sha256 ? { sha256: values.sha256 } : {}) },
      user: values.user ? { id: values.user } : null,
    });
  } finally {
    runtime.close();
  }
  process.stdout.write(values.json ? `${JSON.stringify(doc, null, 2)}\n` : formatJob(doc));
  return doc.status === 'failed' || doc.status === 'cancelled' ? 2 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    } else process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
