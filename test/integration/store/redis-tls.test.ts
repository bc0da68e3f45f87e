/**
 * `rediss://` with a private CA (`store.redis.tls.ca`): the Redis store against a real
 * redis-server listening on a TLS port with a certificate from a test CA made at test time
 * (test/helpers/pki.ts), and against recording servers for what must be refused. A refused
 * server never receives a Redis command, so never the password: the client checks the
 * certificate (CA, name, dates) before it sends anything but the TLS handshake.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explainCommand } from '../../../src/cli/explain-command.js';
import { bucketKey } from '../../../src/limits/rate-limit.js';
import { RedisStore } from '../../../src/store/redis.js';
import { TestPki, type IssueOptions } from '../../helpers/pki.js';
import { RedisServer } from '../../helpers/redis-server.js';
import { hitWindows, reserve } from '../../unit/store/admit-helpers.js';

const PASSWORD = 'redis-tls-pw-5d1c8e';
const PREFIX = 'tls:';
const T0 = Date.now();

/** A listener that records every byte it receives (decrypted, for a TLS one) and answers nothing. */
async function recorder(cert?: { cert: Buffer; key: Buffer }): Promise<{ port: number; bytes(): Buffer; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  const onSocket = (socket: net.Socket): void => {
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
  };
  const server = cert === undefined ? net.createServer(onSocket) : tls.createServer({ ...cert }, onSocket);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    bytes: () => Buffer.concat(chunks),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('RedisStore over TLS (rediss://) with a private CA', function () {
  this.timeout(20_000);
  let pki: TestPki;
  let server: RedisServer;
  let raw: Redis;
  const open: RedisStore[] = [];

  const store = (url: string, ca: Buffer | null = pki.ca.cert): RedisStore => {
    const s = new RedisStore({
      url,
      ...(ca !== null ? { ca: ca.toString() } : {}),
      timeoutMs: 2000,
      keyPrefix: PREFIX,
      maxReconnectDelayMs: 50,
    });
    open.push(s);
    return s;
  };
  /** The error `ready` ends with (it must end with one). */
  const refusal = async (s: RedisStore): Promise<string> => {
    const err = await s.ready(1500).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err, 'the connection must be refused').to.be.instanceOf(Error);
    return (err as Error).message;
  };

  before(async () => {
    pki = TestPki.create();
    const pair = pki.issue({ names: ['localhost'] });
    server = await RedisServer.start({ password: PASSWORD, tls: { certFile: pair.certFile, keyFile: pair.keyFile, caFile: pki.ca.certFile } });
    raw = new Redis({ port: server.port, host: '127.0.0.1', password: PASSWORD });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  after(async () => {
    raw?.disconnect();
    await server?.stop();
    pki?.close();
  });

  it('counts exactly through the TLS port, trusting the configured CA', async () => {
    const s = store(`rediss://:${PASSWORD}@localhost:${server.tlsPort}`);
    await s.ready(3000);
    const hit = [{ key: 'w', limit: 10, windowMs: 60_000 }];
    for (let i = 0; i < 3; i++) await hitWindows(s, hit, T0);
    const budget = { key: 'b', limit: 1000, amount: 300, minAmount: 300, expiresAtMs: T0 + 3_600_000 };
    await reserve(s, [budget], 'req-1', 60_000, T0);
    await s.settle([budget], 'req-1', [123], T0);
    expect(await raw.get(`${PREFIX}w`)).to.equal('3');
    expect(await s.readBudget('b', T0)).to.deep.equal({ used: 123, reserved: 0 });
    // The store's connection came in on the TLS-only port.
    const clients = (await raw.call('CLIENT', 'LIST')) as string;
    expect(clients).to.match(new RegExp(`laddr=127\\.0\\.0\\.1:${server.tlsPort} `));
  });

  it('`tollgate explain --store rediss://…` reads the counters through TLS with the configuration’s CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-explain-tls-'));
    try {
      const config = join(dir, 'tollgate.yaml');
      writeFileSync(
        config,
        `authentication:
  - provider: { name: corp, issuer: "https://auth.example.com", clientId: envoy }
rateLimits:
  - { name: per-user, requestsPerUnit: 10, unit: minute }
store:
  redis: { url: "rediss://localhost:${server.tlsPort}", tls: { ca: { file: ${pki.ca.certFile} } }, keyPrefix: "${PREFIX}" }
`,
      );
      await raw.set(`${PREFIX}${bucketKey('per-user', 'ann')}`, '4', 'PX', 60_000);
      const out: string[] = [];
      const err: string[] = [];
      const sink = (into: string[]) => ({ write: (s: string) => into.push(s) });
      const args = ['--config', config, '--claims', '{"sub":"ann"}', '--model', 'gpt-4o-mini', '--json'];
      const code = await explainCommand([...args, '--store', `rediss://:${PASSWORD}@localhost:${server.tlsPort}`], sink(out), sink(err));
      expect(code, err.join('')).to.equal(0);
      const limits = (JSON.parse(out.join('')) as { limits: { name: string; current?: number }[] }).limits;
      expect(limits.find((l) => l.name === 'per-user')?.current).to.equal(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without the CA, Node’s own store does not trust the test CA: refused', async () => {
    expect(await refusal(store(`rediss://:${PASSWORD}@localhost:${server.tlsPort}`, null))).to.match(/certificate/i);
  });

  it('refuses the real server when its name is not the one dialled (an IP address not in the certificate)', async () => {
    expect(await refusal(store(`rediss://:${PASSWORD}@127.0.0.1:${server.tlsPort}`))).to.match(/IP: 127\.0\.0\.1 is not in the cert/);
  });

  const cases: [string, IssueOptions, RegExp][] = [
    ['a certificate from another CA', { names: ['localhost'], untrustedCa: true }, /unable to (get local issuer|verify the first) certificate/],
    ['an expired certificate', { names: ['localhost'], expired: true }, /expired/],
    ['a certificate for another name', { names: ['redis.other.example'] }, /altnames/],
  ];
  for (const [what, cert, reason] of cases) {
    it(`refuses ${what} and never sends a command, so never the password`, async () => {
      const pair = pki.issue(cert);
      const fake = await recorder({ cert: pair.cert, key: pair.key });
      try {
        const s = store(`rediss://:${PASSWORD}@localhost:${fake.port}`);
        expect(await refusal(s)).to.match(reason);
        await hitWindows(s, [{ key: 'w', limit: 1, windowMs: 1000 }], T0).then(
          () => expect.fail('an admission through a refused connection'),
          (err: Error) => expect(err.message).to.match(/Stream isn't writeable|Connection is closed|enableOfflineQueue/),
        );
        expect(fake.bytes().length, 'decrypted bytes the server received').to.equal(0);
      } finally {
        await fake.close();
      }
    });
  }

  it('speaks TLS to a server that does not: only a handshake goes out, never the password', async () => {
    const plain = await recorder();
    try {
      const s = store(`rediss://:${PASSWORD}@localhost:${plain.port}`);
      await refusal(s);
      const bytes = plain.bytes();
      expect(bytes.length).to.be.above(0);
      expect(bytes[0], 'a TLS handshake record').to.equal(0x16);
      expect(bytes.includes(PASSWORD)).to.equal(false);
      expect(bytes.includes('AUTH')).to.equal(false);
    } finally {
      await plain.close();
    }
  });
});

describe('RedisStore: a socket that reports a second error', function () {
  this.timeout(10_000);

  it('drops errors after the first on the same socket instead of throwing them out of the process', async () => {
    // A listener that accepts and answers nothing: the store's socket stays open.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s.on('error', () => undefined)));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const s = new RedisStore({
      url: `redis://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
      timeoutMs: 500,
      keyPrefix: PREFIX,
      maxReconnectDelayMs: 50,
    });
    try {
      const client = (s as unknown as { client: { stream?: net.Socket; status: string } }).client;
      while (client.stream === undefined || sockets.length === 0)
        await new Promise((r) => setTimeout(r, 10));
      const stream = client.stream;
      // What a refused TLS handshake can do: the refusal, then the server's alert on the same socket.
      expect(() => {
        stream.emit('error', new Error('first: certificate refused'));
        stream.emit('error', new Error('second: tlsv1 alert decode error'));
      }).not.to.throw();
      expect(stream.listenerCount('error')).to.be.above(0);
    } finally {
      await s.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
