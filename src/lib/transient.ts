/**
 * Which errors are trouble of the moment rather than a fault of the job or a bug: a database connection lost or
 * refused, a database busy, a full disk, Redis out of reach. Work that fails with one of them is tried again later
 * (the transaction, the run); anything else is reported. Errors are recognised by their codes and messages, so this
 * module knows no driver.
 */

/**
 * PostgreSQL SQLSTATEs of a connection that is gone or cannot be had for now: class 08 (connection exception),
 * 57P01-57P03 (administrator, crash or start-up shutdown), 53300 (too many connections).
 */
const PG_CONNECTION_STATES = /^(08...|57P0[123]|53300)$/;

/** Socket errors. */
const SOCKET_ERRNOS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);

/** node-postgres about a client whose connection ended, and the server while it starts or stops. */
const PG_CONNECTION_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'the database system is starting up',
  'the database system is shutting down',
];

/** True when `err` says the connection to PostgreSQL was lost or could not be made (not that a statement failed). */
export function isDatabaseConnectionLoss(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code } = err as { code?: unknown };
  if (typeof code === 'string' && (PG_CONNECTION_STATES.test(code) || SOCKET_ERRNOS.has(code))) return true;
  return PG_CONNECTION_MESSAGES.some((m) => err.message.includes(m));
}

/** The disk (or the quota) is full: SQLite's SQLITE_FULL, or a file write's ENOSPC/EDQUOT. */
export function isDiskFull(err: unknown): boolean {
  return causes(err).some((e) => {
    const { code } = e as { code?: unknown };
    return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
  });
}

/** SQLite error codes worth another try: locked or busy past the busy timeout, I/O trouble, a full disk. */
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL)/;
/** Errno codes of files and processes worth another try. */
const FS_TRANSIENT = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM']);
/** ioredis with a command given up on, or a connection that is closed or closing. */
const REDIS_MESSAGES = ['Connection is closed', "Stream isn't writeable", 'Reached the max retries per request limit'];

/** True when `err` (or an error it was caused by) is trouble of the moment: see the module's comment. */
export function isTransient(err: unknown): boolean {
  return causes(err).some((e) => {
    if (isDatabaseConnectionLoss(e)) return true;
    const { code } = e as { code?: unknown };
    if (typeof code === 'string' && (SQLITE_TRANSIENT.test(code) || FS_TRANSIENT.has(code))) return true;
    return e.name === 'MaxRetriesPerRequestError' || REDIS_MESSAGES.some((m) => e.message.includes(m));
  });
}

/** `err` and the errors it was caused by, at most eight deep. */
function causes(err: unknown): Error[] {
  const out: Error[] = [];
  for (let e = err; e instanceof Error && out.length < 8; e = e.cause) out.push(e);
  return out;
}
