import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { describeProblems, MINIMAL } from './helpers.js';

function store(yaml: string) {
  return parseConfig(`${MINIMAL}store:\n${yaml}`, 'test.yaml').store;
}

describe('config: store.redis', () => {
  it('reads a plain URL with the defaults', () => {
    expect(store('  redis: { url: "redis://127.0.0.1:6379" }\n')).to.deep.equal({
      redis: { url: 'redis://127.0.0.1:6379', timeoutMs: 50, onUnavailable: 'closed', keyPrefix: 'tollgate:' },
    });
  });

  it('reads the URL from an environment variable or a file (it may carry a password)', () => {
    expect(store('  redis: { url: { env: REDIS_URL } }\n').redis?.url).to.deep.equal({ env: 'REDIS_URL' });
    expect(store('  redis: { url: { file: /run/secrets/redis } }\n').redis?.url).to.deep.equal({ file: '/run/secrets/redis' });
  });

  it('reads Sentinel: addresses, the primary name, a password, TLS and replica acknowledgement', () => {
    const s = store(`  redis:
    sentinels: ["10.0.0.1:26379", "sentinel-b.redis:26379", "[::1]:26379"]
    name: tollgate
    password: { env: REDIS_PASSWORD }
    tls: true
    waitForReplicas: 1
`);
    expect(s.redis).to.deep.include({
      sentinels: ['10.0.0.1:26379', 'sentinel-b.redis:26379', '[::1]:26379'],
      name: 'tollgate',
      password: { env: 'REDIS_PASSWORD' },
      tls: true,
      waitForReplicas: 1,
    });
    expect(s.redis?.url).to.equal(undefined);
  });

  it('reads Cluster seed nodes', () => {
    expect(store('  redis: { cluster: ["redis-0:6379", "redis-1:6379"] }\n').redis?.cluster).to.deep.equal([
      'redis-0:6379',
      'redis-1:6379',
    ]);
  });

  it('needs exactly one way to reach Redis', () => {
    expect(describeProblems(`${MINIMAL}store: { redis: { timeoutMs: 5 } }\n`)).to.deep.equal([
      '3: store.redis: needs exactly one of `url`, `sentinels` (with `name`) or `cluster`',
    ]);
    expect(
      describeProblems(`${MINIMAL}store:\n  redis: { url: "redis://a:6379", cluster: ["b:6379"] }\n`),
    ).to.deep.equal(['4: store.redis: needs exactly one of `url`, `sentinels` (with `name`) or `cluster`']);
  });

  it('pairs `sentinels` with `name`', () => {
    expect(describeProblems(`${MINIMAL}store:\n  redis: { sentinels: ["a:26379"] }\n`)).to.deep.equal([
      '4: store.redis: `sentinels` needs `name`: the primary the sentinels monitor',
    ]);
    expect(describeProblems(`${MINIMAL}store:\n  redis:\n    cluster: ["a:6379"]\n    name: x\n`)).to.deep.equal([
      '6: store.redis.name: `name` goes with `sentinels`',
    ]);
  });

  it('keeps a password and TLS inside a URL, where they already have a place', () => {
    expect(
      describeProblems(`${MINIMAL}store:\n  redis:\n    url: "redis://a:6379"\n    password: { env: P }\n    tls: true\n`),
    ).to.deep.equal([
      '6: store.redis.password: a `url` carries its own password (`redis://:secret@host`)',
      '7: store.redis.tls: a `url` says TLS by its scheme (`rediss://`); `tls: { ca: { file: PATH } }` adds a CA',
    ]);
  });

  it('reads a CA for a rediss:// URL, the sentinels or the nodes (a mapping turns TLS on)', () => {
    const ca = { ca: { file: '/etc/tollgate/redis-ca.pem' } };
    expect(store('  redis: { url: "rediss://r:6380", tls: { ca: { file: /etc/tollgate/redis-ca.pem } } }\n').redis?.tls).to.deep.equal(ca);
    expect(store('  redis: { url: { env: REDIS_URL }, tls: { ca: { file: /etc/tollgate/redis-ca.pem } } }\n').redis?.tls).to.deep.equal(ca);
    expect(store('  redis: { cluster: ["r:6379"], tls: { ca: { file: /etc/tollgate/redis-ca.pem } } }\n').redis?.tls).to.deep.equal(ca);
  });

  it('refuses a CA for a plain redis:// URL, a CA without a file and other keys', () => {
    expect(describeProblems(`${MINIMAL}store:\n  redis:\n    url: "redis://r:6379"\n    tls: { ca: { file: /ca.pem } }\n`)).to.deep.equal([
      '6: store.redis.tls: a CA needs a TLS connection: write the URL as `rediss://`',
    ]);
    expect(describeProblems(`${MINIMAL}store:\n  redis:\n    url: "rediss://r:6379"\n    tls: { ca: { env: CA } }\n`)).to.deep.equal([
      "6: store.redis.tls.ca.env: unknown key `env` (expected one of: file)",
      '6: store.redis.tls.ca.file: is required',
    ]);
    expect(describeProblems(`${MINIMAL}store:\n  redis:\n    cluster: ["r:6379"]\n    tls: { verify: false }\n`)).to.deep.equal([
      "6: store.redis.tls.verify: unknown key `verify` (expected one of: ca)",
      '6: store.redis.tls.ca: is required',
    ]);
  });

  it('refuses bad node addresses, an empty list, a non-boolean tls and too many replicas', () => {
    expect(
      describeProblems(`${MINIMAL}store:
  redis:
    sentinels: ["a:26379", "no-port", "b:0", "c:70000"]
    name: p
    tls: "yes"
    waitForReplicas: 17
`),
    ).to.deep.equal([
      '5: store.redis.sentinels[1]: expected host:port, got "no-port"',
      '5: store.redis.sentinels[2]: expected host:port, got "b:0"',
      '5: store.redis.sentinels[3]: expected host:port, got "c:70000"',
      '7: store.redis.tls: expected true or false, got the string "yes"',
      '8: store.redis.waitForReplicas: must be between 0 and 16, got 17',
    ]);
    expect(describeProblems(`${MINIMAL}store:\n  redis: { cluster: [] }\n`)).to.deep.equal([
      '4: store.redis.cluster: needs at least one host:port',
    ]);
  });

  it('never echoes a URL it refuses: it may hold a password', () => {
    const problems = describeProblems(`${MINIMAL}store:\n  redis: { url: "http://:hunter2@localhost:6379" }\n`);
    expect(problems).to.deep.equal([
      '4: store.redis.url: expected a redis:// or rediss:// URL with a host, or { env: NAME } / { file: PATH }',
    ]);
    expect(problems.join('\n')).not.to.contain('hunter2');
  });
});
