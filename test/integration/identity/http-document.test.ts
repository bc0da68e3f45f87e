import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { fetchJson } from '../../../src/identity/discovery.js';
import { getDocument, MAX_DOCUMENT_BYTES } from '../../../src/identity/http-document.js';

/** The key-document getter against a real HTTP server on loopback. */
describe('identity/http-document: getDocument', () => {
  let server: Server;
  let base: string;
  const requests: string[] = [];

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/doc': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: ['é'] }));
    },
    '/moved': (_req, res) => {
      res.writeHead(302, { location: '/doc' });
      res.end();
    },
    '/loop': (_req, res) => {
      res.writeHead(307, { location: '/loop' });
      res.end();
    },
    '/missing': (_req, res) => {
      res.writeHead(404);
      res.end('not here');
    },
    // Chunked, no content-length: the limit must apply while reading.
    '/huge': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      for (let sent = 0; sent <= MAX_DOCUMENT_BYTES; sent += chunk.length) res.write(chunk);
      res.end('{}');
    },
    '/declared-huge': (_req, res) => {
      res.writeHead(200, { 'content-length': String(MAX_DOCUMENT_BYTES + 1) });
      res.write('{');
    },
    // Headers at once, then a body that never ends.
    '/stall': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":');
    },
    '/cut': (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('{"keys":', () => res.destroy());
    },
  };

  before(async () => {
    server = createServer((req, res) => {
      requests.push(`${req.url} ${req.headers.accept ?? ''}`);
      const route = routes[req.url ?? ''];
      if (route === undefined) {
        res.writeHead(500);
        res.end();
        return;
      }
      route(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    requests.length = 0;
  });

  const json = (path: string, timeoutMs = 2000): Promise<unknown> =>
    fetchJson(getDocument, `${base}${path}`, timeoutMs, 'JWKS');

  it('reads a JSON document as UTF-8 and sends the accept header', async () => {
    expect(await json('/doc')).to.deep.equal({ keys: ['é'] });
    expect(requests).to.deep.equal(['/doc application/json']);
  });

  it('follows a redirect, as fetch did', async () => {
    expect(await json('/moved')).to.deep.equal({ keys: ['é'] });
    expect(requests.map((r) => r.split(' ')[0])).to.deep.equal(['/moved', '/doc']);
  });

  it('gives up after 20 redirects', async () => {
    const err = await json('/loop').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.equal(`JWKS ${base}/loop unreachable: more than 20 redirects`);
    expect(requests).to.have.length(21);
  });

  it('reports the status of a non-2xx answer', async () => {
    const res = await getDocument(`${base}/missing`, { signal: AbortSignal.timeout(2000), headers: {} });
    expect(res.ok).to.equal(false);
    expect(res.status).to.equal(404);
    const err = await json('/missing').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.equal(`JWKS ${base}/missing answered HTTP 404`);
  });

  it('stops reading a body past 1 MiB, declared or not', async () => {
    for (const path of ['/huge', '/declared-huge']) {
      const err = await json(path).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).to.equal(`JWKS ${base}${path} is larger than 1 MiB`);
    }
  });

  it('holds the deadline over the body too', async () => {
    const started = Date.now();
    const err = await json('/stall', 150).then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.equal(`JWKS ${base}/stall unreachable: timed out after 150 ms`);
    expect(Date.now() - started).to.be.below(1000);
  });

  it('fails on a connection cut before the end of the body', async () => {
    const err = await json('/cut').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.match(new RegExp(`^JWKS ${base}/cut unreachable: `));
  });

  it('refuses a scheme other than http and https', async () => {
    const bad = await fetchJson(getDocument, 'ftp://127.0.0.1/x', 1000, 'JWKS').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(bad?.message).to.equal('JWKS ftp://127.0.0.1/x unreachable: unsupported protocol ftp: (http: or https: only)');
  });
});
