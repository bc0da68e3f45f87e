import { expect } from 'chai';
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
