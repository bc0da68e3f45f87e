/**
 * Keys and hostile tokens for tests at every level (unit, integration, e2e). Each builder
 * takes the DevIssuer that the system under test trusts, so the token is hostile for exactly
 * one reason and otherwise looks like a good token from that issuer.
 */
import {
  exportSPKI,
  generateKeyPair,
  importJWK,
  SignJWT,
  UnsecuredJWT,
  exportJWK,
  type JWK,
} from 'jose';
import type { ProviderConfig } from '../../src/config/schema.js';
import { DEFAULT_ALGORITHMS } from '../../src/config/schema.js';
import type { DevIssuer } from '../../src/dev/issuer.js';
import type { ReasonCode } from '../../src/domain/errors.js';

/** A ProviderConfig with the documented defaults, trusting `issuer` (a DevIssuer or a URL). */
export function testProvider(
  issuer: DevIssuer | string,
  overrides: Partial<ProviderConfig> = {},
): ProviderConfig {
  const url = typeof issuer === 'string' ? issuer : issuer.url;
  return {
    name: 'test-idp',
    issuer: url,
    audiences: [typeof issuer === 'string' ? 'tollgate-demo' : issuer.audience],
    algorithms: DEFAULT_ALGORITHMS,
    clockSkewSeconds: 30,
    maxTokenBytes: 8192,
    claims: { user: 'email', groups: 'groups', tenant: 'tenant_id' },
    jwksCooldownSeconds: 30,
    jwksCacheMaxAgeSeconds: 600,
    jwksTimeoutMs: 2000,
    ...overrides,
  };
}

function currentPublicJwk(issuer: DevIssuer): JWK {
  const jwk = issuer.jwks().keys.find((k) => k.kid === issuer.currentKid);
  if (jwk === undefined) throw new Error('issuer has no current key');
  return jwk;
}

/** The issuer's current public key as SPKI PEM, the classic secret of the HS256 confusion attack. */
export async function publicKeyPem(issuer: DevIssuer): Promise<string> {
  const key = await importJWK(currentPublicJwk(issuer), issuer.alg, { extractable: true });
  if (key instanceof Uint8Array) throw new Error('unexpected symmetric key');
  return exportSPKI(key);
}

const attackerKeys = new Map<string, ReturnType<typeof makeAttackerKey>>();

async function makeAttackerKey(alg: 'RS256' | 'ES256') {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { ...pair, alg, publicJwk: await exportJWK(pair.publicKey) };
}

/** A key pair that no issuer publishes (the attacker's key); one per algorithm, reused. */
export function attackerKey(alg: 'RS256' | 'ES256' = 'ES256'): ReturnType<typeof makeAttackerKey> {
  let key = attackerKeys.get(alg);
  if (key === undefined) {
    key = makeAttackerKey(alg);
    attackerKeys.set(alg, key);
  }
  return key;
}

type Claims = Readonly<Record<string, unknown>>;

/** `alg: none`, no signature, otherwise the issuer's usual claims. */
export function algNone(issuer: DevIssuer, claims?: Claims): Promise<string> {
  return Promise.resolve(new UnsecuredJWT(issuer.claims(claims)).encode());
}

/** HS256 with the issuer's public key (PEM text or JWK JSON) as the HMAC secret. */
export async function hsWithPublicKey(
  issuer: DevIssuer,
  claims?: Claims,
  secretForm: 'pem' | 'jwk' = 'pem',
): Promise<string> {
  const secret =
    secretForm === 'pem' ? await publicKeyPem(issuer) : JSON.stringify(currentPublicJwk(issuer));
  return new SignJWT(issuer.claims(claims))
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: issuer.currentKid })
    .sign(new TextEncoder().encode(secret));
}

/** Signed by the attacker's key, which is embedded as the `jwk` header (CVE-2018-0114 style). */
export async function embeddedJwk(issuer: DevIssuer, claims?: Claims): Promise<string> {
  const attacker = await attackerKey('ES256');
  return new SignJWT(issuer.claims(claims))
    .setProtectedHeader({
      alg: 'ES256',
      typ: 'JWT',
      kid: issuer.currentKid,
      jwk: attacker.publicJwk,
    })
    .sign(attacker.privateKey);
}

/**
 * Genuinely signed by the issuer, but the header also names a key: a URL (`jku`, `x5u`), a
 * certificate chain (`x5c`) or the issuer's own public key (`jwk`).
 */
export function keyReference(
  issuer: DevIssuer,
  param: 'jku' | 'x5u' | 'x5c' | 'jwk',
  claims?: Claims,
): Promise<string> {
  const values = {
    jku: 'https://attacker.example/jwks.json',
    x5u: 'https://attacker.example/cert.pem',
    x5c: ['MIIBszCCAVmgAwIBAgIUQ'],
    jwk: currentPublicJwk(issuer),
  };
  return issuer.mint(claims, { header: { [param]: values[param] } });
}

/** Signed by a key the issuer never published, under a kid it does not know. */
export async function unknownKid(
  issuer: DevIssuer,
  claims?: Claims,
  kid = 'unknown-kid-0001',
): Promise<string> {
  const attacker = await attackerKey(issuer.alg);
  return new SignJWT(issuer.claims(claims))
    .setProtectedHeader({ alg: issuer.alg, typ: 'JWT', kid })
    .sign(attacker.privateKey);
}

/** Signed by the issuer; `exp` an hour (or `secondsAgo`) in the past. */
export function expired(issuer: DevIssuer, claims?: Claims, secondsAgo = 3600): Promise<string> {
  return issuer.mint(claims, { expiresIn: -secondsAgo });
}

/** Signed by the issuer; `nbf` an hour (or `inSeconds`) in the future. */
export function notYetValid(issuer: DevIssuer, claims?: Claims, inSeconds = 3600): Promise<string> {
  return issuer.mint(claims, { notBefore: inSeconds, expiresIn: inSeconds + 3600 });
}

export function wrongAudience(
  issuer: DevIssuer,
  claims?: Claims,
  audience = 'some-other-client',
): Promise<string> {
  return issuer.mint(claims, { audience });
}

/**
 * A well-formed token from an issuer nobody configured: minted by a second DevIssuer when one
 * is given, otherwise signed by a fresh key under that issuer URL.
 */
export async function unknownIssuer(
  other: DevIssuer | string = 'https://unknown-issuer.example',
  claims?: Claims,
  audience = 'tollgate-demo',
): Promise<string> {
  if (typeof other !== 'string') return other.mint({ sub: 'intruder', ...claims }, { audience });
  const attacker = await attackerKey('RS256');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: other,
    aud: audience,
    sub: 'intruder',
    iat: now,
    exp: now + 3600,
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'k1' })
    .sign(attacker.privateKey);
}

/** A genuine token whose payload was edited afterwards (the signature no longer matches). */
export async function tampered(
  issuer: DevIssuer,
  claims: Claims = { groups: ['admins'] },
): Promise<string> {
  const [header, , signature] = (await issuer.mint()).split('.');
  const forged = Buffer.from(JSON.stringify(issuer.claims(claims))).toString('base64url');
  return `${header}.${forged}.${signature}`;
}

export function garbage(): string {
  return 'this-is-not-a-jwt';
}

/** A genuinely signed token padded with a filler claim to at least `bytes` bytes. */
export function oversized(issuer: DevIssuer, claims?: Claims, bytes = 16 * 1024): Promise<string> {
  // base64url inflates by 4/3, so this much filler gives at least `bytes` once encoded.
  return issuer.mint({ ...claims, padding: 'x'.repeat(Math.ceil((bytes * 3) / 4)) });
}

export interface HostileCase {
  readonly name: string;
  readonly token: string;
  /** The reason Tollgate must give (x-tollgate-reason). */
  readonly reason: ReasonCode;
}

/** Every hostile token at once, with the reason code each must be refused with. */
export async function hostileTokens(issuer: DevIssuer, claims?: Claims): Promise<HostileCase[]> {
  return [
    { name: 'alg none', token: await algNone(issuer, claims), reason: 'alg_not_allowed' },
    {
      name: 'HS256 keyed with the public key PEM',
      token: await hsWithPublicKey(issuer, claims, 'pem'),
      reason: 'alg_not_allowed',
    },
    {
      name: 'HS256 keyed with the public JWK',
      token: await hsWithPublicKey(issuer, claims, 'jwk'),
      reason: 'alg_not_allowed',
    },
    {
      name: 'embedded jwk (attacker key)',
      token: await embeddedJwk(issuer, claims),
      reason: 'alg_not_allowed',
    },
    {
      name: 'jku header',
      token: await keyReference(issuer, 'jku', claims),
      reason: 'alg_not_allowed',
    },
    {
      name: 'x5u header',
      token: await keyReference(issuer, 'x5u', claims),
      reason: 'alg_not_allowed',
    },
    {
      name: 'x5c header',
      token: await keyReference(issuer, 'x5c', claims),
      reason: 'alg_not_allowed',
    },
    { name: 'unknown kid', token: await unknownKid(issuer, claims), reason: 'unknown_kid' },
    { name: 'expired', token: await expired(issuer, claims), reason: 'token_expired' },
    {
      name: 'nbf in the future',
      token: await notYetValid(issuer, claims),
      reason: 'token_not_yet_valid',
    },
    { name: 'wrong audience', token: await wrongAudience(issuer, claims), reason: 'bad_audience' },
    {
      name: 'unknown issuer',
      token: await unknownIssuer('https://unknown-issuer.example', claims, issuer.audience),
      reason: 'unknown_issuer',
    },
    { name: 'tampered payload', token: await tampered(issuer), reason: 'bad_signature' },
    { name: 'garbage', token: garbage(), reason: 'malformed_token' },
    { name: '16 KB token', token: await oversized(issuer, claims), reason: 'token_too_large' },
  ];
}
