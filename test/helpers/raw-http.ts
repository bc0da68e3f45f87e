/**
 * HTTP/1.1 over a raw socket: the request target and body go out byte for byte, where fetch
 * and the SDKs would normalise a path (`/./`, `%2e%2e`) before it ever left the client.
 */
import { connect } from 'node:net';

export interface RawResponse {
  readonly status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** One request on its own connection (`connection: close`); content-length is set for `body`. */
export function rawRequest(
  baseUrl: string,
  method: string,
  target: string,
  headers: Readonly<Record<string, string>> = {},
  body: string | Buffer = '',
): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head =
    `${method} ${target} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: close\r\n` +
    Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('') +
    (bytes.length > 0 || method === 'POST' ? `content-length: ${bytes.length}\r\n` : '') +
    '\r\n';
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(Buffer.concat([Buffer.from(head, 'latin1'), bytes]));
    });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (): void => {
      if (done) return;
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      if (split < 0) {
        done = true;
        reject(new Error(`no HTTP response to ${method} ${target}: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      done = true;
      socket.destroy();
      resolve(parse(text, split));
    };
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${method} ${target}`)));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // Done as soon as a response with a content-length is whole: Envoy may hold the
      // connection open a while after a reply it made before reading the request body.
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, split));
      if (split >= 0 && length !== null && Buffer.byteLength(text.slice(split + 4)) >= Number(length[1])) finish();
    });
    socket.on('error', (err) => {
      if (!done) reject(err);
    });
    socket.on('close', finish);
  });
}

function parse(text: string, split: number): RawResponse {
  const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n');
  const out: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return { status: Number(statusLine.split(' ')[1]), headers: out, body: text.slice(split + 4) };
}
