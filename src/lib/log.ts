import pino, { type Logger } from 'pino';

export type { Logger };

/** Logs go to stderr: stdout carries only results (job documents, Mermaid). */
export function createLogger(level: string, name = 'media-orchestrator'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
