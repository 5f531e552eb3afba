/**
 * What this process knows of each webhook receiver host (a URL's origin): how many deliveries to it are open, and its
 * circuit. A host takes at most `concurrency` deliveries at once; one that fails `failures` times in a row (no answer,
 * a refused connection, 5xx, 429) has its circuit opened: nothing is sent to it for `cooldownMs`, then one delivery
 * goes as a trial (half-open), which closes the circuit when answered and opens it again when not. A delivery that
 * may not go now is told until when to wait, so it can wait in the queue without holding a worker.
 */

export interface ReceiverHostLimits {
  concurrency: number;
  failures: number;
  cooldownMs: number;
  /** A delivery's time limit: the longest a slot can stay taken. */
  timeoutMs: number;
}

/** How a delivery went, for its host's circuit: answered, failed as an unhealthy host fails, or neither. */
export type HostOutcome = 'answered' | 'failed' | 'neutral';

export type Entry =
  | { go: true; done(outcome: HostOutcome, error?: string): void }
  | { go: false; until: number; why: 'busy' | 'open'; failures: number; lastError: string | null };

interface Host {
  /** Start times of the deliveries open now. */
  open: Set<{ at: number }>;
  /** Failures in a row. */
  failures: number;
  lastError: string | null;
  /** While the circuit is open: when it half-opens. Zero: closed. */
  openUntil: number;
  /** A half-open trial is under way. */
  trial: boolean;
  /** A smoothed time a delivery to this host takes, to know how long a busy host stays busy. */
  latencyMs: number;
}

/** Hosts kept at most: past this, hosts with nothing open are forgotten oldest first (any URL can name a host). */
const MAX_HOSTS = 10_000;
/** The shortest wait for a busy host. */
const MIN_WAIT_MS = 100;

export class ReceiverHosts {
  private readonly hosts = new Map<string, Host>();

  constructor(
    private readonly limits: ReceiverHostLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a delivery to `origin` may go now; when it goes, `done` must be called once it has ended. */
  enter(origin: string): Entry {
    const host = this.host(origin);
    const now = this.now();
    const wait = (why: 'busy' | 'open', until: number): Entry => ({
      go: false,
      until,
      why,
      failures: host.failures,
      lastError: host.lastError,
    });
    if (host.openUntil > now) {
      // Spread the deliveries waiting for the cooldown to end, so that one of them, not all, is the trial.
      return wait('open', host.openUntil + Math.random() * Math.min(1000, this.limits.cooldownMs / 4));
    }
    const halfOpen = host.openUntil !== 0;
    if ((halfOpen && host.trial) || host.open.size >= this.limits.concurrency)
      return wait('busy', now + this.busyFor(host, now));
    const slot = { at: now };
    host.open.add(slot);
    if (halfOpen) host.trial = true;
    let ended = false;
    return {
      go: true,
      done: (outcome, error) => {
        if (ended) return;
        ended = true;
        this.end(origin, host, slot, halfOpen, outcome, error ?? null);
      },
    };
  }

  private end(
    origin: string,
    host: Host,
    slot: { at: number },
    trial: boolean,
    outcome: HostOutcome,
    error: string | null,
  ): void {
    const now = this.now();
    host.open.delete(slot);
    if (trial) host.trial = false;
    host.latencyMs = host.latencyMs * 0.7 + (now - slot.at) * 0.3;
    if (outcome === 'answered') {
      host.failures = 0;
      host.lastError = null;
      host.openUntil = 0;
    } else if (outcome === 'failed') {
      host.failures += 1;
      host.lastError = error;
      // A failed trial opens the circuit again; so does the failure that reaches the limit.
      if (trial || (host.openUntil === 0 && host.failures >= this.limits.failures))
        host.openUntil = now + this.limits.cooldownMs;
    }
    // (A neutral trial told nothing of the host: the circuit stays half-open and the next delivery is the trial.)
    if (host.open.size === 0 && host.failures === 0 && host.openUntil === 0) this.hosts.delete(origin);
  }

  /** How long a delivery waits for a busy host: about as long as its deliveries take, within the time limit. */
  private busyFor(host: Host, now: number): number {
    let oldest = 0;
    for (const slot of host.open) oldest = Math.max(oldest, now - slot.at);
    const expected = Math.min(this.limits.timeoutMs, Math.max(MIN_WAIT_MS, host.latencyMs, oldest));
    return expected * (1 + Math.random() * 0.5);
  }

  private host(origin: string): Host {
    let host = this.hosts.get(origin);
    if (!host) {
      if (this.hosts.size >= MAX_HOSTS) {
        for (const [name, h] of this.hosts) {
          if (h.open.size > 0) continue;
          this.hosts.delete(name);
          break;
        }
      }
      host = { open: new Set(), failures: 0, lastError: null, openUntil: 0, trial: false, latencyMs: 0 };
      this.hosts.set(origin, host);
    }
    return host;
  }
}
