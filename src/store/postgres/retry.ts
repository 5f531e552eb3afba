/**
 * Lost connections cost retries, not processes. A failover, a restart or a killed backend ends the connections a
 * pool holds; the statement in flight fails, and the work is tried again on a new connection. Only work that is safe
 * to repeat goes through `retryOnConnectionLoss`: a transaction that the lost connection rolled back, or one that had
 * committed (its reply lost) and whose repetition changes nothing more (upserts, idempotent read-modify-writes).
 */
import { isDatabaseConnectionLoss } from '../../lib/transient.js';

export { isDatabaseConnectionLoss as isConnectionLoss };

/** How long one piece of work keeps trying: long enough for a restart or a failover, short enough to report. */
const RETRY_FOR_MS = 15_000;

/**
 * `work()`, tried again (after 50 ms, doubling to 2 s at most) while it fails with a lost connection, for up to
 * RETRY_FOR_MS; any other error, or the last one, is thrown.
 */
export async function retryOnConnectionLoss<T>(work: () => Promise<T>, retryForMs = RETRY_FOR_MS): Promise<T> {
  const deadline = Date.now() + retryForMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 2000)) {
    try {
      return await work();
    } catch (err) {
      if (!isDatabaseConnectionLoss(err) || Date.now() + delay > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
