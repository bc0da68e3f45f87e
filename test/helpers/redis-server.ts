/**
 * A real redis-server for integration tests: a free port, a throwaway directory, no
 * persistence. `kill()` simulates a crash (SIGKILL); `restart()` brings it back on the same
 * port, empty, so tests can prove a store reconnects; `pause()` (SIGSTOP) simulates a hung one.
 * With `tls`, it also listens on a TLS-only port (Debian's redis-server has TLS built in).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BINARY = process.env['REDIS_SERVER_BIN'] ?? 'redis-server';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket; true when the server answers +PONG (or NOAUTH: it is up). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(200, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data) => done(/^(\+PONG|-NOAUTH)/.test(data.toString())));
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}

/** A server certificate and key, and the CA file redis-server insists on even without client certificates. */
export interface RedisTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export class RedisServer {
  readonly port: number;
  private readonly dir: string;
  private readonly password: string | undefined;
  private readonly extraArgs: readonly string[];
  private child: ChildProcess | undefined;

  /** With `tls`: the port that speaks only TLS (the plain `port` stays open for the test). */
  readonly tlsPort: number | undefined;

  private constructor(port: number, dir: string, password: string | undefined, extraArgs: readonly string[], tlsPort?: number) {
    this.port = port;
    this.tlsPort = tlsPort;
    this.dir = dir;
    this.password = password;
    this.extraArgs = extraArgs;
  }

  /**
   * Starts a server on a free port; `password` sets `requirepass`; `args(port, dir)` are more
   * redis-server options (`--replicaof`, `--cluster-enabled yes`, …), led by a config file's
   * absolute path when it needs one (a sentinel must have a file it can rewrite).
   */
  static async start(
    options: { password?: string; args?: (port: number, dir: string) => string[]; tls?: RedisTls } = {},
  ): Promise<RedisServer> {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-redis-'));
    const port = await freePort();
    const tlsPort = options.tls === undefined ? undefined : await freePort();
    const tlsArgs =
      options.tls === undefined
        ? []
        : ['--tls-port', String(tlsPort), '--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile,
            '--tls-ca-cert-file', options.tls.caFile, '--tls-auth-clients', 'no'];
    const server = new RedisServer(port, dir, options.password, [...(options.args?.(port, dir) ?? []), ...tlsArgs], tlsPort);
    try {
      await server.spawn();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** `redis://127.0.0.1:PORT` with the password when one is set; `db` appended when given. */
  url(db?: number): string {
    const auth = this.password === undefined ? '' : `:${encodeURIComponent(this.password)}@`;
    return `redis://${auth}127.0.0.1:${this.port}${db === undefined ? '' : `/${db}`}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Simulates a crash: SIGKILL, no goodbye to connected clients. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Freezes the process (SIGSTOP): connections stay open but nothing answers — a hung Redis. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Thaws a paused server (SIGCONT). */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Starts again on the same port (the data is gone: nothing is persisted). */
  async restart(): Promise<void> {
    if (this.child) await this.signal('SIGKILL');
    await this.spawn();
  }

  /** Stops the server and removes its directory; safe to call twice. */
  async stop(): Promise<void> {
    this.resume(); // a stopped process would hold SIGTERM until continued
    if (this.child) await this.signal('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The directory the server runs in (its config and cluster files). */
  get directory(): string {
    return this.dir;
  }

  private async spawn(): Promise<void> {
    // A config file given first (`args` starting with a path) must stay first for redis-server.
    const file = this.extraArgs[0]?.startsWith('/') === true ? [this.extraArgs[0]] : [];
    const args = [...file, '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir];
    args.push('--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...this.extraArgs.slice(file.length));
    if (this.password !== undefined) args.push('--requirepass', this.password);
    const child = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`redis-server exited early: ${stderr}`);
      if (await ping(this.port)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`redis-server did not answer PING on port ${this.port} within 5 s`);
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(sig);
    await exited;
    this.child = undefined;
  }
}
