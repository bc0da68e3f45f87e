/**
 * The JWS signature check of a first-seen token, done synchronously with node:crypto on the
 * key jose imported. jose checks signatures through WebCrypto, which runs every verify as a
 * thread-pool job: a hand-off to another thread and back, and a promise, per token. The same
 * OpenSSL call made in place costs about 40 % less CPU per first-seen ES256 token
 * (docs/benchmarks.md), and the main thread never waits on the pool. Everything else stays jose's:
 * the key import (algorithm, curve, key type), and the claims (iss, aud, exp, nbf, skew) are
 * validated by jose's own claims-set check (verify.ts).
 *
 * The parameters are WebCrypto's for JWS (RFC 7518 §3): PKCS #1 v1.5 for RS*, PSS with a salt
 * as long as the hash for PS*, ECDSA with the fixed-length r‖s signature for ES*, and EdDSA.
 * RSA keys under 2048 bits are refused, as jose refuses them.
 */
import { constants, KeyObject, verify, type VerifyKeyObjectInput } from 'node:crypto';
import type { CryptoKey } from 'jose';

interface Scheme {
  /** The digest, or null for EdDSA (the hash is part of the algorithm). */
  readonly hash: string | null;
  /** ES*: the exact length of the r‖s signature, bytes. */
  readonly ecBytes?: number;
  /** PS*: the salt length, bytes. */
  readonly pssSalt?: number;
  readonly rsa?: boolean;
}

const SCHEMES: Readonly<Record<string, Scheme>> = {
  RS256: { hash: 'sha256', rsa: true },
  RS384: { hash: 'sha384', rsa: true },
  RS512: { hash: 'sha512', rsa: true },
  PS256: { hash: 'sha256', rsa: true, pssSalt: 32 },
  PS384: { hash: 'sha384', rsa: true, pssSalt: 48 },
  PS512: { hash: 'sha512', rsa: true, pssSalt: 64 },
  ES256: { hash: 'sha256', ecBytes: 64 },
  ES384: { hash: 'sha384', ecBytes: 96 },
  ES512: { hash: 'sha512', ecBytes: 132 },
  EdDSA: { hash: null },
};

/** The smallest RSA modulus jose accepts for RS* and PS*. */
const MIN_RSA_BITS = 2048;

interface NodeKey {
  readonly object: KeyObject;
  /** The RSA modulus length in bits; undefined for other key types. */
  readonly rsaBits: number | undefined;
}

const nodeKeys = new WeakMap<CryptoKey, NodeKey>();

/** The node:crypto view of a key jose imported, and its RSA size (read once per key). */
function nodeKeyOf(key: CryptoKey): NodeKey {
  let known = nodeKeys.get(key);
  if (known === undefined) {
    const object = KeyObject.from(key);
    known = { object, rsaBits: object.asymmetricKeyDetails?.modulusLength };
    nodeKeys.set(key, known);
  }
  return known;
}

/**
 * Whether `signature` (decoded bytes) is `alg`'s signature of `signingInput` (the token's
 * `header.payload`, ASCII) under `key`. Throws TypeError for an algorithm it does not know or a
 * key jose would not use (an RSA modulus under 2048 bits); a malformed signature is `false`.
 */
export function signatureValid(
  alg: string,
  key: CryptoKey,
  signingInput: string,
  signature: Buffer,
): boolean {
  const scheme = SCHEMES[alg];
  if (scheme === undefined) throw new TypeError(`unsupported JWS algorithm ${alg}`);
  const { object, rsaBits: bits } = nodeKeyOf(key);
  if (scheme.rsa === true) {
    if (bits === undefined || bits < MIN_RSA_BITS)
      throw new TypeError(`${alg} requires key modulusLength to be ${MIN_RSA_BITS} bits or larger`);
  }
  if (scheme.ecBytes !== undefined && signature.length !== scheme.ecBytes) return false;
  const input: VerifyKeyObjectInput =
    scheme.pssSalt !== undefined
      ? { key: object, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.pssSalt }
      : scheme.ecBytes !== undefined
        ? { key: object, dsaEncoding: 'ieee-p1363' }
        : { key: object };
  try {
    return verify(scheme.hash, Buffer.from(signingInput, 'latin1'), input, signature);
  } catch {
    return false;
  }
}
