/**
 * The usage book in Redis (layout in usage-book.ts): one script call per tally, reads in one
 * pipeline per step. Shares the Redis store's client and key prefix (so a Cluster keeps every
 * key in the deployment's one slot).
 */
import type { Cluster, Redis } from 'ioredis';
import { rowsOf, tallyFields, usageKeys, type UsageBook, type UsageRow, type UsageTally } from './usage-book.js';

/**
 * KEYS: tenants set, users set, user hash. ARGV: tenant, user, expireAtMs, then field, amount
 * pairs. Every key expires with its day (PEXPIREAT is idempotent: each tally sets the same).
 */
const TALLY = `
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
for k = 1, 3 do
  redis.call('PEXPIREAT', KEYS[k], ARGV[3])
end
return 1
`;

interface TallyCommand {
  tollgateTally(...args: (string | number)[]): Promise<unknown>;
}

export class RedisUsageBook implements UsageBook {
  private readonly client: Redis | Cluster;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(client: Redis | Cluster, prefix: string, timeoutMs: number) {
    this.client = client;
    this.prefix = prefix;
    this.timeoutMs = timeoutMs;
    client.defineCommand('tollgateTally', { lua: TALLY });
  }

  async tally(t: UsageTally): Promise<void> {
    const keys = [usageKeys.tenants(t.day), usageKeys.users(t.day, t.tenant), usageKeys.user(t.day, t.tenant, t.user)];
    const args = [t.tenant, t.user, Math.floor(t.expiresAtMs), ...tallyFields(t).flat()];
    await this.deadline((this.client as unknown as TallyCommand).tollgateTally(3, ...keys.map((k) => this.prefix + k), ...args));
  }

  async readDay(day: string, tenant: string, user?: string): Promise<UsageRow[]> {
    const users = user !== undefined ? [user] : await this.deadline(this.client.smembers(this.prefix + usageKeys.users(day, tenant)));
    if (users.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const u of users) pipeline.hgetall(this.prefix + usageKeys.user(day, tenant, u));
    const replies = (await this.deadline(pipeline.exec())) ?? [];
    return users.flatMap((u, i) => {
      const [err, hash] = replies[i] ?? [new Error('no reply'), undefined];
      if (err) throw err;
      return rowsOf(u, (hash ?? {}) as Record<string, string>);
    });
  }

  tenants(day: string): Promise<string[]> {
    return this.deadline(this.client.smembers(this.prefix + usageKeys.tenants(day)));
  }

  /**
   * Ten times the store's deadline: a tally runs after the response has ended, and a page's
   * reads may take longer than one admission; neither is on a request's path.
   */
  private deadline<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`usage book: Redis did not answer within ${this.timeoutMs * 10} ms`)), this.timeoutMs * 10);
    });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }
}
