/**
 * `tessera proxy ca [--out FILE]`: prints (or writes) the injection proxy's TLS-interception CA
 * certificate, from GET /v1/proxy/ca.pem (public; no token needed). The SHA-256 fingerprint
 * goes to stderr so it can be compared out of band (docs/proxy-tls.md).
 */
import type { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { CliError, EXIT, type CliIo } from './io.js';
import { terminalJson } from '../shared/terminal.js';

const PATH = '/v1/proxy/ca.pem';

export function registerProxyCaCommand(proxy: Command, deps: { io: CliIo; addrOf: (cmd: Command) => string }): void {
  const { io } = deps;
  proxy
    .command('ca')
    .description('print the proxy\'s TLS-interception CA certificate (PEM) that agents must trust; --out writes it to a file')
    .option('--out <file>', 'write the certificate to this file (mode 0644, replaced if it exists) instead of printing it')
    .action(async (opts: { out?: string }, cmd: Command) => {
      const addr = deps.addrOf(cmd);
      const pem = await fetchCa(addr, io);
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(pem);
      } catch {
        throw new CliError('TESSERA_SDK_RESPONSE_INVALID', `${addr}${PATH} did not answer with a PEM certificate; is ${addr} a Tessera server?`, EXIT.REFUSED);
      }
      if (cmd.optsWithGlobals<{ json?: boolean }>().json) {
        if (opts.out) await write(opts.out, pem);
        io.stdout.write(`${terminalJson({ fingerprint_sha256: cert.fingerprint256, subject: cert.subject.split('\n').join(', '), not_after: cert.validTo, ...(opts.out ? { out: opts.out } : { pem }) }, 2)}\n`);
        return;
      }
      if (opts.out) {
        await write(opts.out, pem);
        io.stderr.write(`wrote ${opts.out} (SHA-256 ${cert.fingerprint256}, valid until ${cert.validTo})\n`);
        return;
      }
      io.stdout.write(pem);
      io.stderr.write(`SHA-256 fingerprint ${cert.fingerprint256}, valid until ${cert.validTo}\n`);
    });
}

async function write(path: string, pem: string): Promise<void> {
  try {
    await writeFile(path, pem, { mode: 0o644 });
  } catch (e) {
    throw new CliError('TESSERA_CLI_FILE_WRITE_FAILED', `cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.REFUSED);
  }
}

async function fetchCa(addr: string, io: CliIo): Promise<string> {
  const doFetch = io.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
  let res: Response;
  let text: string;
  try {
    res = await doFetch(`${addr}${PATH}`, { method: 'GET', headers: { accept: 'application/x-pem-file', 'user-agent': 'tessera-cli' }, redirect: 'error', signal: AbortSignal.timeout(30_000) });
    text = await res.text();
  } catch (e) {
    const cause = e as { cause?: { code?: string }; message?: string };
    throw new CliError('TESSERA_CLI_CONNECT_FAILED', `cannot reach Tessera at ${addr} (${cause.cause?.code ?? cause.message ?? 'network error'}); check TESSERA_ADDR and that the server is running`, EXIT.CONNECT);
  }
  if (res.ok && text.startsWith('-----BEGIN CERTIFICATE-----')) return text.endsWith('\n') ? text : `${text}\n`;
  let err: { code?: unknown; message?: unknown; request_id?: unknown } | undefined;
  try {
    err = (JSON.parse(text) as { error?: typeof err }).error;
  } catch {
    err = undefined;
  }
  if (!res.ok && err && typeof err.code === 'string' && /^TESSERA_[A-Z0-9_]+$/.test(err.code)) {
    throw new CliError(err.code, String(err.message ?? err.code), EXIT.REFUSED, { status: res.status, ...(typeof err.request_id === 'string' ? { requestId: err.request_id } : {}) });
  }
  throw new CliError('TESSERA_SDK_RESPONSE_INVALID', `GET ${PATH} answered ${res.status} without a certificate; is ${addr} a Tessera server with the proxy CA (this version or later)?`, EXIT.REFUSED);
}
