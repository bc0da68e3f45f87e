import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../src/config/problems.js';
import type { RedisStoreConfig, RedisTlsConfig, StoreConfig } from '../../../src/config/schema.js';
import { createStore } from '../../../src/store/index.js';
import { expect } from 'chai';
import type { RedisOptions } from 'ioredis';
import { RedisStore, redisOptionsFromUrl } from '../../../src/store/redis.js';

describe('redisOptionsFromUrl', () => {
  it('reads host and default port', () => {
    expect(redisOptionsFromUrl('redis://127.0.0.1')).to.deep.equal({
      host: '127.0.0.1',
      port: 6379,
    });
  });

  it('reads password, user, port and db number', () => {
    expect(redisOptionsFromUrl('redis://:s%40cret@redis.local:6380/3')).to.deep.equal({
      host: 'redis.local',
      port: 6380,
      password: 's@cret',
      db: 3,
    });
    expect(redisOptionsFromUrl('redis://app:pw@h:1/0')).to.include({
      username: 'app',
      password: 'pw',
      db: 0,
    });
  });

  it('turns rediss:// into TLS with the host as server name', () => {
    expect(redisOptionsFromUrl('rediss://cache.example.com:6390')).to.deep.equal({
      host: 'cache.example.com',
      port: 6390,
      tls: { servername: 'cache.example.com' },
    });
  });

  it('sends no SNI server name for an IP address', () => {
    expect(redisOptionsFromUrl('rediss://10.0.0.5')).to.deep.include({ tls: {} });
  });

  it('strips the brackets of an IPv6 host', () => {
    expect(redisOptionsFromUrl('redis://[::1]:7000')).to.include({ host: '::1', port: 7000 });
  });

  it('refuses other schemes, a non-numeric db and garbage, without echoing the password', () => {
    expect(() => redisOptionsFromUrl('http://h:1')).to.throw(/redis:\/\/ or rediss:\/\//);
    expect(() => redisOptionsFromUrl('redis://h/cache')).to.throw(/db number/);
    expect(() => redisOptionsFromUrl('redis//:hunter2@'))
      .to.throw(TypeError)
      .that.satisfies((e: Error) => !e.message.includes('hunter2'));
  });
});

describe('RedisStore with Sentinel and tls: true', () => {
  it('speaks TLS to the sentinels and to the primary they announce (ioredis ignores `tls` alone)', () => {
    const store = new RedisStore({
      sentinels: ['127.0.0.1:1'],
      name: 'mymaster',
      tls: true,
      keyPrefix: 'tollgate:',
      timeoutMs: 100,
    });
    try {
      expect(store.client.options).to.deep.include({
        tls: {},
        enableTLSForSentinelMode: true,
        sentinelTLS: {},
      });
    } finally {
      store.client.disconnect();
    }
  });
});

describe('RedisStore with a CA (store.redis.tls.ca)', () => {
  const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const options = { keyPrefix: 'tollgate:', timeoutMs: 100 };
  const made: RedisStore[] = [];
  afterEach(() => {
    for (const s of made.splice(0)) s.client.disconnect();
  });
  const make = (o: ConstructorParameters<typeof RedisStore>[0]): RedisStore => {
    const s = new RedisStore(o);
    made.push(s);
    return s;
  };

  it('trusts it for a rediss:// URL, keeping the host name as SNI', () => {
    expect((make({ ...options, url: 'rediss://localhost:1', ca: CA }).client.options as RedisOptions).tls).to.deep.equal({
      servername: 'localhost',
      ca: CA,
    });
  });

  it('trusts it for the sentinels and the primary they announce', () => {
    expect(make({ ...options, sentinels: ['127.0.0.1:1'], name: 'p', tls: true, ca: CA }).client.options).to.deep.include({
      tls: { ca: CA },
      sentinelTLS: { ca: CA },
      enableTLSForSentinelMode: true,
    });
  });

  it('refuses a CA with a plain redis:// URL', () => {
    expect(() => new RedisStore({ ...options, url: 'redis://localhost:1', ca: CA })).to.throw(/rediss:\/\//);
  });
});

describe('createStore: store.redis.tls.ca read at start-up', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-ca-'));
    writeFileSync(join(dir, 'not-pem.txt'), 'hello\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const redis = (tls: RedisTlsConfig, url: RedisStoreConfig['url']): StoreConfig => ({
    redis: { url, tls, timeoutMs: 50, onUnavailable: 'closed', keyPrefix: 'tollgate:' },
  });
  const problems = (config: StoreConfig): string[] => {
    try {
      createStore(config).store.close().catch(() => undefined);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
      throw err;
    }
    return [];
  };

  it('names a missing or non-PEM CA file, and a URL from the environment that is not rediss://', () => {
    expect(problems(redis({ ca: { file: join(dir, 'missing.pem') } }, 'rediss://r:1'))).to.deep.equal([
      `store.redis.tls.ca: cannot read CA file ${join(dir, 'missing.pem')} (ENOENT)`,
    ]);
    expect(problems(redis({ ca: { file: join(dir, 'not-pem.txt') } }, 'rediss://r:1'))).to.deep.equal([
      `store.redis.tls.ca: CA file ${join(dir, 'not-pem.txt')} holds no PEM certificate`,
    ]);
    process.env['TOLLGATE_TEST_REDIS_URL'] = 'redis://:pw@r:1';
    try {
      writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      expect(problems(redis({ ca: { file: join(dir, 'ca.pem') } }, { env: 'TOLLGATE_TEST_REDIS_URL' }))).to.deep.equal([
        'store.redis.tls: a CA needs a TLS connection: write the URL as `rediss://`',
      ]);
    } finally {
      delete process.env['TOLLGATE_TEST_REDIS_URL'];
    }
  });
});
