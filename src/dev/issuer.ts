/**
 * A development OIDC issuer: discovery document, JWKS and token minting on 127.0.0.1.
 * For `tollgate demo`, `tollgate token` and tests only; it has no login, no consent and no
 * protection of its keys beyond a 0600 state file.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose';

export type DevAlgorithm = 'RS256' | 'ES256';

export interface DevIssuerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  readonly port?: number;
  readonly alg?: DevAlgorithm;
  /** Where to save the private keys and issuer URL (JSON, mode 0600) for `mintFromState`. */
  readonly statePath?: string;
  /** Default `aud` of minted tokens (default `tollgate-demo`). */
  readonly audience?: string;
}

export interface MintOptions {
  /** Seconds from now (negative = already expired) or a duration like `90s`, `15m`, `2h`, `-1d`. Default 1h. */
  readonly expiresIn?: number | string;
  /** Sets `nbf` relative to now, same units as expiresIn. */
  readonly notBefore?: number | string;
  /** `kid` header. One of the issuer's kids selects that key; any other value is sent as is
   *  while the current key signs (an "unknown kid" token). */
  readonly kid?: string;
  readonly audience?: string;
  /** Extra protected-header parameters (tests use this for `jku`, `x5u`, …). */
  readonly header?: Readonly<Record<string, unknown>>;
}

export const DEFAULT_DEV_AUDIENCE = 'tollgate-demo';
export const DEFAULT_DEV_SUBJECT = 'demo-user';

interface SigningKey {
  readonly kid: string;
  readonly alg: DevAlgorithm;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly privateJwk: JWK;
}

interface StateFile {
  readonly issuer: string;
  readonly audience: string;
  readonly currentKid: string;
  readonly keys: readonly {
    readonly kid: string;
    readonly alg: DevAlgorithm;
    readonly privateJwk: JWK;
  }[];
}

/** Parse `expiresIn`-style values into seconds. */
export function durationSeconds(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = /^\s*(-?\d+)\s*(s|m|h|d)?\s*$/.exec(value);
  if (m === null) throw new Error(`invalid duration "${value}" (use e.g. 90, 90s, 15m, 2h, 1d)`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/** The payload of a minted token: defaults ← options ← explicit claims (`undefined` removes one). */
export function buildClaims(
  issuer: string,
  defaultAudience: string,
  claims: Readonly<Record<string, unknown>> = {},
  opts: MintOptions = {},
  nowSeconds = Math.floor(Date.now() / 1000),
): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    iss: issuer,
    sub: DEFAULT_DEV_SUBJECT,
    aud: opts.audience ?? defaultAudience,
    iat: nowSeconds,
    exp: nowSeconds + durationSeconds(opts.expiresIn ?? 3600),
  };
  if (opts.notBefore !== undefined) payload.nbf = nowSeconds + durationSeconds(opts.notBefore);
  for (const [name, value] of Object.entries(claims)) {
    if (value === undefined) delete payload[name];
    else payload[name] = value;
  }
  return payload;
}

async function newKey(alg: DevAlgorithm): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, alg, privateKey, publicJwk, privateJwk: await exportJWK(privateKey) };
}

function sign(
  key: SigningKey,
  kid: string,
  payload: Record<string, unknown>,
  header: Readonly<Record<string, unknown>> = {},
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ typ: 'JWT', ...header, alg: key.alg, kid })
    .sign(key.privateKey);
}

function pickKey(
  keys: readonly SigningKey[],
  current: SigningKey,
  kid: string | undefined,
): SigningKey {
  return keys.find((k) => k.kid === kid) ?? current;
}

export class DevIssuer {
  /** The issuer identifier, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly audience: string;
  readonly #server: Server;
  readonly #statePath: string | undefined;
  #keys: SigningKey[];
  #current: SigningKey;
  #down = false;
  #delayMs = 0;
  readonly #requests = { discovery: 0, jwks: 0 };

  private constructor(
    server: Server,
    url: string,
    key: SigningKey,
    audience: string,
    statePath: string | undefined,
  ) {
    this.#server = server;
    this.url = url;
    this.#keys = [key];
    this.#current = key;
    this.audience = audience;
    this.#statePath = statePath;
  }

  static async start(opts: DevIssuerOptions = {}): Promise<DevIssuer> {
    const key = await newKey(opts.alg ?? 'RS256');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const issuer = new DevIssuer(
      server,
      `http://127.0.0.1:${port}`,
      key,
      opts.audience ?? DEFAULT_DEV_AUDIENCE,
      opts.statePath,
    );
    server.on('request', (req, res) => issuer.#handle(req, res));
    await issuer.#saveState();
    return issuer;
  }

  /** The kid new tokens are signed with. */
  get currentKid(): string {
    return this.#current.kid;
  }

  get alg(): DevAlgorithm {
    return this.#current.alg;
  }

  /** How many times discovery and the JWKS were served (503s included). */
  get requests(): { readonly discovery: number; readonly jwks: number } {
    return { ...this.#requests };
  }

  /** The published key set (public keys only). */
  jwks(): { keys: JWK[] } {
    return {
      keys: this.#keys.map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' })),
    };
  }

  /** Claims a token from this issuer would carry, without signing them. */
  claims(claims?: Readonly<Record<string, unknown>>, opts?: MintOptions): Record<string, unknown> {
    return buildClaims(this.url, this.audience, claims, opts);
  }

  mint(claims: Readonly<Record<string, unknown>> = {}, opts: MintOptions = {}): Promise<string> {
    const key = pickKey(this.#keys, this.#current, opts.kid);
    return sign(key, opts.kid ?? key.kid, this.claims(claims, opts), opts.header);
  }

  /** Add a new signing key and make it current. Old keys stay published unless `retireOld`. */
  async rotate(opts: { retireOld?: boolean } = {}): Promise<string> {
    const key = await newKey(this.#current.alg);
    this.#keys = opts.retireOld === true ? [key] : [...this.#keys, key];
    this.#current = key;
    await this.#saveState();
    return key.kid;
  }

  /** While down, every request is answered 503 (an unreachable IdP for tests). */
  setDown(down: boolean): void {
    this.#down = down;
  }

  /** Delay every answer (to exercise client timeouts). */
  setDelay(ms: number): void {
    this.#delayMs = ms;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // fetch keeps connections alive; without this close() would wait for them to idle out.
    this.#server.closeAllConnections();
    await closed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', this.url).pathname;
    const send = (status: number, body: unknown): void => {
      const write = (): void => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(body));
      };
      if (this.#delayMs > 0) setTimeout(write, this.#delayMs).unref();
      else write();
    };
    if (path === '/.well-known/openid-configuration') this.#requests.discovery += 1;
    if (path === '/jwks.json') this.#requests.jwks += 1;
    if (this.#down) return send(503, { error: 'temporarily_unavailable' });
    if (req.method !== 'GET') return send(405, { error: 'method_not_allowed' });
    if (path === '/.well-known/openid-configuration') {
      return send(200, {
        issuer: this.url,
        jwks_uri: `${this.url}/jwks.json`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [this.#current.alg],
      });
    }
    if (path === '/jwks.json') return send(200, this.jwks());
    return send(404, { error: 'not_found' });
  }

  async #saveState(): Promise<void> {
    if (this.#statePath === undefined) return;
    const state: StateFile = {
      issuer: this.url,
      audience: this.audience,
      currentKid: this.#current.kid,
      keys: this.#keys.map((k) => ({ kid: k.kid, alg: k.alg, privateJwk: k.privateJwk })),
    };
    await mkdir(dirname(this.#statePath), { recursive: true, mode: 0o700 });
    // Write a fresh 0600 file and rename it over the old one: the private keys are never
    // readable by others, not even for an instant, and readers never see half a file.
    const tmp = `${this.#statePath}.${randomUUID()}.tmp`;
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await rename(tmp, this.#statePath);
  }
}

/**
 * Mint a token from a state file written by a running (or past) DevIssuer, without the
 * server: what `tollgate token` does.
 */
export async function mintFromState(
  statePath: string,
  claims: Readonly<Record<string, unknown>> = {},
  opts: MintOptions = {},
): Promise<string> {
  let text: string;
  try {
    text = await readFile(statePath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`no demo issuer keys at ${statePath}: run \`tollgate demo\` first (or set TOLLGATE_HOME)`, {
        cause: err,
      });
    }
    throw err;
  }
  const state = JSON.parse(text) as StateFile;
  if (typeof state.issuer !== 'string' || !Array.isArray(state.keys)) {
    throw new Error(`${statePath} is not a development issuer state file`);
  }
  const keys: StateFile['keys'] = state.keys;
  const wanted = opts.kid ?? state.currentKid;
  const stored = keys.find((k) => k.kid === wanted) ?? keys.find((k) => k.kid === state.currentKid);
  if (stored === undefined) throw new Error(`${statePath} holds no signing key`);
  const privateKey = await importJWK(stored.privateJwk, stored.alg);
  if (privateKey instanceof Uint8Array) throw new Error(`${statePath} holds a symmetric key`);
  const key: SigningKey = {
    kid: stored.kid,
    alg: stored.alg,
    privateKey,
    publicJwk: {},
    privateJwk: stored.privateJwk,
  };
  return sign(
    key,
    opts.kid ?? key.kid,
    buildClaims(state.issuer, state.audience, claims, opts),
    opts.header,
  );
}
