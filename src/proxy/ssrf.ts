/**
 * SSRF guard of the injection proxy (issue 10 item 4, ADR 0204): which addresses an upstream may
 * have, Tessera's own name resolution, and an undici dispatcher that dials only the address it
 * vetted (no DNS rebinding between the check and the connection).
 *
 * Layers (docs/proxy-ssrf.md "Who normalises what"):
 * - http(s) URLs (route upstreams, absolute-form targets) are parsed by WHATWG URL, which already
 *   turns legacy IPv4 spellings (`http://0x7f.1/`, `http://2130706433/`) into dotted quads and
 *   lower-cases names; `normalizeHost` repeats that WHATWG host parsing for hosts that never were
 *   URLs (a CONNECT's authority, a Host header, an allow rule), so every layer sees one spelling.
 * - `classifyAddress` decides on an IP address alone, by the IANA special-purpose registries
 *   (RFC 6890 and successors), seeing through IPv6 forms that embed an IPv4 address.
 * - `createSsrfGuard().vet` resolves a name with `dns.promises.lookup({ all: true })` and refuses
 *   when ANY address is not public unless the route's `allow_private` covers it.
 * - `dispatcher()` calls `vet` inside undici's connect and dials the vetted address itself.
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { domainToASCII } from 'node:url';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { fail, TesseraError } from '../shared/errors.js';

/** A route's SSRF exceptions (`proxy.routes[].allow_private`): CIDRs (`10.0.0.0/8`, `fd00::/8`, a bare IP = /32 or /128) or `host[:port]`. */
export interface TargetRules { readonly allow: readonly string[] }
/** What `vet` checked: the normalised host, the port and the one address to dial. */
export interface VettedTarget { readonly host: string; readonly port: number; readonly address: string; readonly family: 4 | 6 }
export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'metadata' | 'unique-local' | 'unspecified' | 'multicast' | 'reserved';

/** An address's class, the registry block it falls in and that block's name (for messages). */
export interface AddressInfo { readonly class: AddressClass; readonly block?: string; readonly name?: string; readonly embedded?: string }

type Entry = readonly [cidr: string, cls: AddressClass, name: string];

/**
 * IPv4 special-purpose blocks, most specific first (the first match wins). Source: IANA IPv4
 * Special-Purpose Address Registry (RFC 6890 §2.2.2, RFC 6598, RFC 7335, RFC 8155…), plus cloud
 * metadata endpoints. Blocks the registry marks "globally reachable" (192.0.0.9, 192.0.0.10,
 * 192.31.196.0/24, 192.52.193.0/24, 192.175.48.0/24) are public and not listed.
 */
const V4: readonly Entry[] = [
  ['169.254.169.254/32', 'metadata', 'cloud instance metadata (AWS, GCP, Azure, OpenStack, DigitalOcean…)'],
  ['169.254.170.2/32', 'metadata', 'AWS ECS task metadata and credentials'],
  ['169.254.170.23/32', 'metadata', 'AWS EKS Pod Identity agent'],
  ['169.254.0.23/32', 'metadata', 'Tencent Cloud metadata'],
  ['100.100.100.200/32', 'metadata', 'Alibaba Cloud metadata'],
  ['192.0.0.192/32', 'metadata', 'Oracle Cloud metadata'],
  ['168.63.129.16/32', 'metadata', 'Azure WireServer (platform agent endpoint)'],
  ['0.0.0.0/8', 'unspecified', '"this network" (RFC 791; 0.0.0.0 reaches the local host)'],
  ['10.0.0.0/8', 'private', 'private-use (RFC 1918)'],
  ['100.64.0.0/10', 'private', 'shared address space, carrier-grade NAT (RFC 6598)'],
  ['127.0.0.0/8', 'loopback', 'loopback (RFC 1122)'],
  ['169.254.0.0/16', 'link-local', 'link-local (RFC 3927)'],
  ['172.16.0.0/12', 'private', 'private-use (RFC 1918)'],
  ['192.0.0.9/32', 'public', 'Port Control Protocol anycast (RFC 7723)'],
  ['192.0.0.10/32', 'public', 'TURN anycast (RFC 8155)'],
  ['192.0.0.0/24', 'reserved', 'IETF protocol assignments (RFC 6890)'],
  ['192.0.2.0/24', 'reserved', 'documentation TEST-NET-1 (RFC 5737)'],
  ['192.88.99.0/24', 'reserved', 'deprecated 6to4 relay anycast (RFC 7526)'],
  ['192.168.0.0/16', 'private', 'private-use (RFC 1918)'],
  ['198.18.0.0/15', 'reserved', 'benchmarking (RFC 2544)'],
  ['198.51.100.0/24', 'reserved', 'documentation TEST-NET-2 (RFC 5737)'],
  ['203.0.113.0/24', 'reserved', 'documentation TEST-NET-3 (RFC 5737)'],
  ['224.0.0.0/4', 'multicast', 'multicast (RFC 5771)'],
  ['255.255.255.255/32', 'reserved', 'limited broadcast (RFC 919)'],
  ['240.0.0.0/4', 'reserved', 'reserved for future use (RFC 1112)'],
];

/**
 * IPv6 special-purpose blocks after the embedded-IPv4 forms are taken out (see `embeddedV4`).
 * Source: IANA IPv6 Special-Purpose Address Registry; only 2000::/3 is allocated global unicast
 * (IANA IPv6 Address Space), so anything else not listed is reserved.
 */
const V6: readonly Entry[] = [
  ['fd00:ec2::254/128', 'metadata', 'AWS instance metadata (IPv6)'],
  ['fd00:ec2::23/128', 'metadata', 'AWS EKS Pod Identity agent (IPv6)'],
  ['fd20:ce::254/128', 'metadata', 'Google Cloud metadata (IPv6)'],
  ['::/128', 'unspecified', 'unspecified address (RFC 4291)'],
  ['::1/128', 'loopback', 'loopback (RFC 4291)'],
  ['100::/64', 'reserved', 'discard-only (RFC 6666)'],
  ['100:0:0:1::/64', 'reserved', 'dummy prefix (RFC 9780)'],
  ['2001:1::1/128', 'public', 'Port Control Protocol anycast (RFC 7723)'],
  ['2001:1::2/128', 'public', 'TURN anycast (RFC 8155)'],
  ['2001:1::3/128', 'public', 'DNS-SD service registration anycast (RFC 9665)'],
  ['2001:3::/32', 'public', 'AMT (RFC 7450)'],
  ['2001:4:112::/48', 'public', 'AS112-v6 (RFC 7535)'],
  ['2001::/23', 'reserved', 'IETF protocol assignments (RFC 2928): benchmarking, ORCHID, DRIP…'],
  ['2001:db8::/32', 'reserved', 'documentation (RFC 3849)'],
  ['3fff::/20', 'reserved', 'documentation (RFC 9637)'],
  ['5f00::/16', 'reserved', 'SRv6 SIDs (RFC 9602)'],
  ['2000::/3', 'public', 'global unicast'],
  ['fc00::/7', 'unique-local', 'unique local (RFC 4193)'],
  ['fe80::/10', 'link-local', 'link-local unicast (RFC 4291)'],
  ['fec0::/10', 'private', 'site-local, deprecated (RFC 3879)'],
  ['ff00::/8', 'multicast', 'multicast (RFC 4291)'],
  ['::/0', 'reserved', 'not allocated for global unicast (outside 2000::/3)'],
];

interface Block { readonly list: BlockList; readonly cidr: string; readonly cls: AddressClass; readonly name: string }
function compile(entries: readonly Entry[], family: 'ipv4' | 'ipv6'): Block[] {
  return entries.map(([cidr, cls, name]) => {
    const [net, bits] = cidr.split('/') as [string, string];
    const list = new BlockList();
    list.addSubnet(net, Number(bits), family);
    return { list, cidr, cls, name };
  });
}
const V4_BLOCKS = compile(V4, 'ipv4');
const V6_BLOCKS = compile(V6, 'ipv6');

/** The 8 16-bit groups of a valid IPv6 address (no zone), a trailing dotted quad included. */
function ipv6Groups(ip: string): number[] {
  let s = ip.toLowerCase();
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/**
 * The IPv4 address an IPv6 address carries, where the network would deliver to it: IPv4-mapped
 * `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), SIIT-translated `::ffff:0:a.b.c.d` (RFC 2765), IPv4-compatible
 * `::a.b.c.d` (deprecated, RFC 4291 §2.5.5.1), NAT64 `64:ff9b::/96` (RFC 6052) and the local-use
 * `64:ff9b:1::/48` (RFC 8215; read at the /96 position — the shorter RFC 6052 formats leave the
 * last 32 bits zero, so they read as 0.0.0.0 and are refused), 6to4 `2002:V4::/48` (RFC 3056) and
 * Teredo `2001:0::/32` (RFC 4380: the client's address, inverted in the last 32 bits; the server's
 * in bits 32–63 — both returned). `::` and `::1` are not embeddings.
 */
export function embeddedV4(ip: string): string[] {
  const g = ipv6Groups(ip);
  const zero = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && g[5] === 0xffff) return [v4(g[6]!, g[7]!)];
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return [v4(g[6]!, g[7]!)];
  if (zero(0, 6) && !(g[6] === 0 && (g[7] === 0 || g[7] === 1))) return [v4(g[6]!, g[7]!)];
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return [v4(g[6]!, g[7]!)];
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return [v4(g[6]!, g[7]!)];
  if (g[0] === 0x2002) return [v4(g[1]!, g[2]!)];
  if (g[0] === 0x2001 && g[1] === 0) return [v4(g[6]! ^ 0xffff, g[7]! ^ 0xffff), v4(g[2]!, g[3]!)];
  return [];
}

function lookupBlock(ip: string, family: 4 | 6): Block | undefined {
  return (family === 4 ? V4_BLOCKS : V6_BLOCKS).find((b) => b.list.check(ip, family === 4 ? 'ipv4' : 'ipv6'));
}

/** Strips brackets and an IPv6 zone (`fe80::1%eth0`: the zone does not change the class). */
function bareIp(ip: string): string {
  const s = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  const zone = s.indexOf('%');
  return zone >= 0 && isIP(s.slice(0, zone)) === 6 ? s.slice(0, zone) : s;
}

/**
 * The class of an IP address with the registry block that decided it. An IPv6 address embedding
 * an IPv4 one takes the IPv4 address's class (the worst of Teredo's two). A string that is not an
 * IP address (after the legacy IPv4 spellings `normalizeHost` accepts) is `reserved`: fail closed.
 */
export function describeAddress(ip: string): AddressInfo {
  let s = bareIp(ip);
  if (isIP(s) === 0) {
    const n = normalizeHost(s);
    if (!n.ok || isIP(n.host) === 0) return { class: 'reserved', name: 'not an IP address' };
    s = n.host;
  }
  if (isIP(s) === 4) {
    const b = lookupBlock(s, 4);
    return b ? { class: b.cls, block: b.cidr, name: b.name } : { class: 'public' };
  }
  const inner = embeddedV4(s);
  if (inner.length > 0) {
    const infos = inner.map((a) => describeAddress(a));
    const worst = infos.find((i) => i.class !== 'public') ?? infos[0]!;
    return { ...worst, embedded: inner[infos.indexOf(worst)]! };
  }
  const b = lookupBlock(s, 6);
  return b ? { class: b.cls, block: b.cidr, name: b.name } : { class: 'reserved' };
}

/** The class of an IP address (IPv4, IPv6, IPv4-mapped/compatible, NAT64, 6to4, Teredo). `public` only for globally reachable unicast. */
export function classifyAddress(ip: string): AddressClass {
  return describeAddress(ip).class;
}

// --- host names ------------------------------------------------------------------------

/**
 * The WHATWG URL IPv4 parser (URL Standard §3.5 "IPv4 parser"): 1–4 dot-separated parts, each
 * decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes — `2130706433`,
 * `0177.0.0.1`, `0x7f.1`, `127.1` are all 127.0.0.1. Undefined when `host` is not such a literal.
 */
export function parseIpv4Literal(host: string): string | undefined {
  const parts = host.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  if (parts.length === 0 || parts.length > 4) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let m: RegExpExecArray | null;
    let n: number;
    if ((m = /^0x([0-9a-f]*)$/i.exec(p))) n = m[1] === '' ? 0 : parseInt(m[1]!, 16);
    else if (/^0[0-7]+$/.test(p)) n = parseInt(p, 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) n = Number(p);
    else return undefined;
    if (!Number.isSafeInteger(n)) return undefined;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((x) => x > 255) || last >= 256 ** (4 - nums.length)) return undefined;
  let value = last;
  nums.forEach((x, i) => (value += x * 256 ** (3 - i)));
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Does the last label look like a number (URL Standard "ends in a number checker")? Then it must be IPv4. */
function endsInNumber(host: string): boolean {
  const labels = host.split('.');
  if (labels[labels.length - 1] === '' && labels.length > 1) labels.pop();
  const last = labels[labels.length - 1] ?? '';
  return /^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/i.test(last);
}

/**
 * One spelling per host, as WHATWG URL would give it: brackets off, IPv6 compressed lower-case,
 * legacy IPv4 spellings as dotted quads, names lower-cased, IDNA-encoded, one trailing dot
 * dropped. `ok: false` names what is wrong (empty labels, several trailing dots, a zone, a numeric
 * last label that is no IPv4 address, characters no host name has, over-long names).
 */
export function normalizeHost(raw: string): { ok: true; host: string } | { ok: false; problem: string } {
  if (raw.length === 0 || raw.length > 300) return { ok: false, problem: 'the host is empty or longer than 253 characters' };
  if (raw.startsWith('[') || raw.includes(':')) {
    const inner = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
    if (inner.includes('%')) return { ok: false, problem: 'an IPv6 zone (%…) is not a host' };
    if (isIP(inner) !== 6) return { ok: false, problem: 'the host is not a valid IPv6 address' };
    return { ok: true, host: new URL(`http://[${inner}]/`).hostname.slice(1, -1) };
  }
  if (/\.\.|^\./.test(raw) || /\.\.$/.test(raw)) return { ok: false, problem: 'the host has an empty label (a leading dot, two dots in a row, or more than one trailing dot)' };
  // ASCII other than letters, digits, ".", "-", "_" never belongs in a host (domainToASCII would
  // cut "a/b" to "a" and drop tabs and newlines); non-ASCII goes through IDNA.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x2c/:-@[-^`{-\x7f]/.test(raw)) return { ok: false, problem: 'the host has characters no host name has' };
  const lower = raw.toLowerCase();
  // IDNA first (UTS #46 maps full-width digits and dots too), then the numeric check on the result.
  const mapped = /^[a-z0-9._-]+$/.test(lower) ? lower : domainToASCII(lower);
  if (!mapped || !/^[a-z0-9._-]+$/.test(mapped)) return { ok: false, problem: 'the host has characters no host name has' };
  if (endsInNumber(mapped)) {
    const ip = parseIpv4Literal(mapped);
    return ip ? { ok: true, host: ip } : { ok: false, problem: 'the host ends in a number but is not a valid IPv4 address' };
  }
  const ascii = mapped.endsWith('.') ? mapped.slice(0, -1) : mapped;
  if (ascii.length > 253 || ascii.split('.').some((l) => l.length === 0 || l.length > 63)) return { ok: false, problem: 'the host name is longer than 253 characters or has an empty or over-long label' };
  return { ok: true, host: ascii };
}

// --- allow rules -----------------------------------------------------------------------

interface CidrRule { readonly kind: 'cidr'; readonly text: string; readonly list: BlockList; readonly exact: boolean }
interface HostRule { readonly kind: 'host'; readonly text: string; readonly host: string; readonly port?: number }
type Rule = CidrRule | HostRule;

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function parseRule(text: string): Rule | string {
  if (text.includes('%')) return `"${text}": an IPv6 zone or a percent sign has no place in a rule`;
  const slash = text.indexOf('/');
  const bare = slash >= 0 ? text.slice(0, slash) : text;
  const family = isIP(bare);
  if (family !== 0) {
    const max = family === 4 ? 32 : 128;
    const bitsText = slash >= 0 ? text.slice(slash + 1) : String(max);
    if (!/^[0-9]{1,3}$/.test(bitsText) || Number(bitsText) > max) return `"${text}": the prefix length must be 0–${max}`;
    const list = new BlockList();
    list.addSubnet(bare, Number(bitsText), family === 4 ? 'ipv4' : 'ipv6');
    return { kind: 'cidr', text, list, exact: Number(bitsText) === max };
  }
  if (slash >= 0) return `"${text}": a CIDR needs an IPv4 or IPv6 address before the "/"`;
  const m = /^(\[[^\]]*\]|[^:]+)(?::([^:]*))?$/.exec(text);
  if (!m) return `"${text}": expected a CIDR (10.0.0.0/8) or host[:port] (internal.svc:8080, [fd00::1]:443)`;
  const host = normalizeHost(m[1]!);
  if (!host.ok) return `"${text}": ${host.problem}`;
  if (m[2] !== undefined) {
    const port = parsePort(m[2]);
    if (port === undefined) return `"${text}": the port must be 1–65535`;
    return { kind: 'host', text, host: host.host, port };
  }
  return { kind: 'host', text, host: host.host };
}

/** Why an `allow_private` entry is not valid, or undefined (for the configuration schema). */
export function targetRuleProblem(text: string): string | undefined {
  const r = parseRule(text);
  return typeof r === 'string' ? r : undefined;
}

const compiled = new WeakMap<TargetRules, Rule[]>();
function rulesOf(rules: TargetRules): Rule[] {
  let out = compiled.get(rules);
  if (!out) {
    out = rules.allow.map((text) => {
      const r = parseRule(text);
      if (typeof r === 'string') throw fail('TESSERA_CONFIG_INVALID', `proxy.routes[].allow_private: ${r}`);
      return r;
    });
    compiled.set(rules, out);
  }
  return out;
}

/**
 * Does a rule let `host:port` reach `address` (of class `cls`)? Unspecified and multicast never
 * (no TCP peer; 0.0.0.0 means this host); cloud metadata only by a CIDR naming exactly it (/32,
 * /128) — a range or a host rule never opens it; else a covering CIDR, an IP rule equal to the
 * address, or a host rule naming the target (with its port, when the rule has one).
 */
function allowedBy(rules: readonly Rule[], host: string, port: number, address: string, cls: AddressClass): Rule | undefined {
  if (cls === 'unspecified' || cls === 'multicast') return undefined;
  const fam = isIP(address) === 4 ? 'ipv4' : 'ipv6';
  return rules.find((r) => {
    if (r.kind === 'cidr') return (cls !== 'metadata' || r.exact) && r.list.check(address, fam);
    if (r.port !== undefined && r.port !== port) return false;
    if (isIP(r.host) !== 0) return cls !== 'metadata' && r.host === address;
    return cls !== 'metadata' && r.host === host;
  });
}

// --- the guard -------------------------------------------------------------------------

/** The resolver the guard uses: `dns.promises.lookup(host, { all: true })` or a test's. */
export type Lookup = (hostname: string, options: { all: true }) => Promise<LookupAddress[]>;

export interface SsrfGuard {
  /** Resolves (Tessera's own lookup, all addresses), vets every address; 400 TESSERA_PROXY_TARGET_INVALID / 403 TESSERA_PROXY_TARGET_FORBIDDEN / 502 TESSERA_PROXY_TARGET_UNRESOLVABLE. */
  vet(host: string, port: number, rules: TargetRules): Promise<VettedTarget>;
  /** An undici Dispatcher (Agent) whose connections go only to vetted addresses (connect pinned to the address vet returned: no rebinding). `ca` is trusted in addition to Node's roots. */
  dispatcher(rules: TargetRules, options?: { ca?: string; connections?: number }): Dispatcher;
}

function forbidden(host: string, port: number, address: string, info: AddressInfo): TesseraError {
  const what = info.name ? `${info.class} address (${info.name}${info.block ? `, ${info.block}` : ''})` : `${info.class} address`;
  const via = info.embedded ? ` (it embeds the IPv4 address ${info.embedded})` : '';
  const target = host === address ? address : `${host}: it resolves to ${address}`;
  const fix = info.class === 'unspecified' || info.class === 'multicast'
    ? 'This class can never be an upstream.'
    : info.class === 'metadata'
      ? `If this route really must reach it, add exactly "${address}/${isIP(address) === 4 ? 32 : 128}" to the route's allow_private (proxy.routes[].allow_private).`
      : `If this route really must reach it, add "${address}/${isIP(address) === 4 ? 32 : 128}" or "${isIP(host) === 6 ? `[${host}]` : host}:${port}" to the route's allow_private (proxy.routes[].allow_private).`;
  return fail('TESSERA_PROXY_TARGET_FORBIDDEN', `the proxy refuses ${target}${via}, a ${what}. ${fix}`, { host, port, address, class: info.class });
}

/** Connection errors after which the next vetted address is tried (never TLS or protocol errors). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** Creates the guard; `lookup` is injectable for tests (default `dns.promises.lookup`). */
export function createSsrfGuard(deps: { lookup?: Lookup } = {}): SsrfGuard {
  const lookup: Lookup = deps.lookup ?? ((h, o) => dns.lookup(h, o));

  async function resolve(host: string): Promise<string[]> {
    if (isIP(host) !== 0) return [host];
    let answers: LookupAddress[];
    try {
      answers = await lookup(host, { all: true });
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'lookup failed';
      throw new TesseraError('TESSERA_PROXY_TARGET_UNRESOLVABLE', `the proxy could not resolve ${host} (${code}); check the host name`, { host, cause: code });
    }
    if (!Array.isArray(answers) || answers.length === 0) throw fail('TESSERA_PROXY_TARGET_UNRESOLVABLE', `the proxy could not resolve ${host}: no address`, { host });
    return answers.map((a) => String(a.address));
  }

  /** Every address of the target, each vetted; in the resolver's order. */
  async function vetAll(rawHost: string, port: number, rules: TargetRules): Promise<{ host: string; addresses: string[] }> {
    const allow = rulesOf(rules);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail('TESSERA_PROXY_TARGET_INVALID', `the upstream port ${String(port).slice(0, 20)} is not valid: it must be 1–65535`, { port: String(port).slice(0, 20) });
    const n = normalizeHost(rawHost);
    if (!n.ok) throw fail('TESSERA_PROXY_TARGET_INVALID', `the upstream host is not valid: ${n.problem}`, { problem: n.problem });
    const host = n.host;
    const addresses = (await resolve(host)).map(bareIp);
    for (const address of addresses) {
      const info = describeAddress(address);
      if (isIP(address) === 0) throw forbidden(host, port, address.slice(0, 60), info);
      if (info.class !== 'public' && !allowedBy(allow, host, port, address, info.class)) throw forbidden(host, port, address, info);
    }
    return { host, addresses };
  }

  async function vet(rawHost: string, port: number, rules: TargetRules): Promise<VettedTarget> {
    const { host, addresses } = await vetAll(rawHost, port, rules);
    const address = addresses[0]!;
    return { host, port, address, family: isIP(address) === 6 ? 6 : 4 };
  }

  function dispatcher(rules: TargetRules, options: { ca?: string; connections?: number } = {}): Dispatcher {
    rulesOf(rules); // a bad rule fails here, at configuration time
    const base = buildConnector(options.ca ? { ca: [...rootCertificates, options.ca] } : {});
    const connect: buildConnector.connector = (opts, callback) => {
      const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
      vetAll(opts.hostname, port, rules).then(
        ({ host, addresses }) => {
          // Dial the vetted addresses only, in order, the next one when a connection cannot be
          // made (`localhost` → ::1 first, the server on 127.0.0.1); never a new resolution.
          // TLS keeps the name for SNI and the certificate check (undici: servername ||
          // getServerName(host), empty for IP literals, RFC 6066 §3).
          const sni = isIP(host) === 0 ? { servername: opts.servername || host } : {};
          const attempt = (i: number): void => {
            base({ ...opts, hostname: addresses[i]!, ...sni }, (err, socket) => {
              if (err && i + 1 < addresses.length && UNREACHABLE.has((err as { code?: string }).code ?? '')) return attempt(i + 1);
              if (err) return callback(err, null);
              callback(null, socket!);
            });
          };
          attempt(0);
        },
        (e: unknown) => callback(e as Error, null),
      );
    };
    return new Agent({ connect, ...(options.connections ? { connections: options.connections } : {}) });
  }

  return { vet, dispatcher };
}
