import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createConnection, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { forwardingSink, type Forwarder, type ForwardingSettings } from './forwarder.js';
import type { AuditSink } from './types.js';

/** RFC 5424 §6.2.1 facility codes Tessera accepts. */
export const SYSLOG_FACILITIES = { auth: 4, authpriv: 10, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23 } as const;
export type SyslogFacility = keyof typeof SYSLOG_FACILITIES;

const SEVERITY_INFO = 6;
const NILVALUE = '-';

/** RFC 5424 header fields are PRINTUSASCII (33..126) with a maximum length. */
function printable(s: string, max: number): string {
  const clean = s.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean.length ? clean : NILVALUE;
}

/**
 * One RFC 5424 message (§6): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, where MSG
 * is the JSON line (UTF-8, with the BOM of §6.4) and MSGID is `audit` for an event or
 * `audit-head` for a signed head.
 */
export function syslogMessage(line: string, o: { facility: SyslogFacility; appName: string; host: string; procId: string; at: Date }): string {
  const pri = SYSLOG_FACILITIES[o.facility] * 8 + SEVERITY_INFO;
  const msgId = line.startsWith('{"type":"tessera.audit.head"') ? 'audit-head' : 'audit';
  const json = line.endsWith('\n') ? line.slice(0, -1) : line;
  return `<${pri}>1 ${o.at.toISOString()} ${printable(o.host, 255)} ${printable(o.appName, 48)} ${printable(o.procId, 128)} ${msgId} ${NILVALUE} \uFEFF${json}`;
}

export interface SyslogSinkOptions extends ForwardingSettings {
  readonly transport: 'udp' | 'tcp';
  readonly host: string;
  readonly port: number;
  readonly facility: SyslogFacility;
  readonly appName: string;
}

/**
 * Sends each line as an RFC 5424 message: over UDP (RFC 5426, one datagram per message; large
 * events may exceed what a receiver accepts) or TCP (RFC 6587 §3.4.1 octet counting, one
 * connection kept open and re-opened after an error). Asynchronous like the http sink: it never
 * counts for failing closed.
 */
export function syslogSink(o: SyslogSinkOptions): AuditSink & { forwarder: Forwarder } {
  const host = hostname();
  const procId = String(process.pid);
  let tcp: Socket | null = null;
  let udp: UdpSocket | null = null;

  const frame = (line: string): Buffer => Buffer.from(syslogMessage(line, { facility: o.facility, appName: o.appName, host, procId, at: new Date() }), 'utf8');

  function connectTcp(): Promise<Socket> {
    if (tcp && !tcp.destroyed) return Promise.resolve(tcp);
    return new Promise<Socket>((resolve, reject) => {
      let connected = false;
      const s = createConnection({ host: o.host, port: o.port });
      s.setTimeout(o.timeoutMs, () => s.destroy(new Error('connect timed out')));
      s.once('connect', () => {
        connected = true;
        s.setTimeout(0);
        tcp = s;
        resolve(s);
      });
      // A permanent listener: a later error (peer reset) must not go unhandled; the next write fails.
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (tcp === s) tcp = null;
        if (!connected) reject(new Error(`syslog ${o.host}:${o.port}: ${e.code ?? e.message}`));
      });
      s.on('close', () => {
        if (tcp === s) tcp = null;
      });
    });
  }

  async function deliverTcp(lines: readonly string[]): Promise<void> {
    const s = await connectTcp();
    const payload = Buffer.concat(lines.flatMap((l) => {
      const msg = frame(l);
      return [Buffer.from(`${msg.length} `, 'ascii'), msg];
    }));
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      s.once('error', onError);
      s.write(payload, (e) => {
        s.removeListener('error', onError);
        if (e) {
          s.destroy();
          reject(new Error(`syslog ${o.host}:${o.port}: ${e.message}`));
        } else resolve();
      });
    });
  }

  async function deliverUdp(lines: readonly string[]): Promise<void> {
    if (!udp) {
      udp = createSocket(o.host.includes(':') ? 'udp6' : 'udp4');
      udp.unref();
      udp.on('error', () => undefined); // send errors are reported per send below
    }
    const sock = udp;
    for (const l of lines) {
      await new Promise<void>((resolve, reject) => sock.send(frame(l), o.port, o.host, (e) => (e ? reject(new Error(`syslog ${o.host}:${o.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)) : resolve())));
    }
  }

  return forwardingSink('syslog', o.transport === 'tcp' ? deliverTcp : deliverUdp, o, async () => {
    const t = tcp;
    tcp = null;
    if (t) await new Promise<void>((resolve) => t.end(() => resolve()));
    const u = udp;
    udp = null;
    u?.close();
  });
}
