/**
 * HTTP requests to addresses a producer chose (webhook receivers): http(s) only, no redirects, and by default no
 * loopback, private, link-local, multicast or otherwise special address. The address is checked when the socket
 * connects, on the address actually used (so a name that resolves to a public address at submission and a private
 * one at delivery, DNS rebinding, is still refused), and a literal IP in the URL is checked the same way.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

/** The longest notifyUrl accepted anywhere. */
export const MAX_URL_LENGTH = 2048;

const BLOCKED = new net.BlockList();
for (const [address, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata services
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  BLOCKED.addSubnet(address, prefix, 'ipv4');
for (const [address, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
  ['64:ff9b::', 96], // NAT64: reaches IPv4 through a gateway
  ['2001:db8::', 32], // documentation
] as const)
  BLOCKED.addSubnet(address, prefix, 'ipv6');

/** Whether an IP address is one a producer's URL may not reach (unless private targets are allowed). */
export function isForbiddenAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family === 6) {
    // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is that IPv4 address.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    if (mapped) return BLOCKED.check(mapped, 'ipv4');
    return BLOCKED.check(address, 'ipv6');
  }
  return true;
}

/** Why a URL may not be used at all (scheme, length, credentials), or null. Addresses are checked at delivery. */
export function urlProblem(raw: string): string | null {
  if (raw.length > MAX_URL_LENGTH) return `the URL is longer than ${MAX_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'only http and https URLs are allowed';
  if (url.username || url.password) return 'the URL may not carry credentials';
  return null;
}

export class ForbiddenAddressError extends Error {
  constructor(address: string) {
    super(
      `${address} is a loopback, private, link-local or otherwise special address (WEBHOOK_ALLOW_PRIVATE=true allows it)`,
    );
    this.name = 'ForbiddenAddressError';
  }
}

/** A dns.lookup that refuses forbidden addresses: what the socket connects to is what was checked. */
function checkedLookup(allowPrivate: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses;
      const bad = allowPrivate ? undefined : list.find((a) => isForbiddenAddress(a.address));
      if (bad) return callback(new ForbiddenAddressError(bad.address), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      const first = list[0];
      if (!first) return callback(new Error(`${hostname} has no address`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}

export interface PostResult {
  status: number;
}

/**
 * POSTs `body` to a producer's URL: no redirects followed (a 3xx is just a non-2xx answer), the response body is
 * discarded, and the whole exchange is bounded by `timeoutMs`.
 */
export function postTo(
  raw: string,
  body: string,
  headers: Record<string, string>,
  opts: { timeoutMs: number; allowPrivate: boolean },
): Promise<PostResult> {
  const problem = urlProblem(raw);
  if (problem) return Promise.reject(new Error(problem));
  const url = new URL(raw);
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(literal) && !opts.allowPrivate && isForbiddenAddress(literal)) {
    return Promise.reject(new ForbiddenAddressError(literal));
  }
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        lookup: checkedLookup(opts.allowPrivate),
        signal: AbortSignal.timeout(opts.timeoutMs),
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
