/**
 * A throwaway PKI for TLS tests, made with the openssl CLI at test time (nothing secret is
 * committed): a test CA, a second CA nobody trusts, and server certificates signed by either,
 * valid or already expired, for the names a test asks for.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface IssueOptions {
  /** DNS names of the subjectAltName; the first is also the subject's CN. */
  readonly names: readonly string[];
  /** Sign with the untrusted CA instead of the test CA. */
  readonly untrustedCa?: boolean;
  /** Already expired: notAfter a day before notBefore (now). */
  readonly expired?: boolean;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function pair(dir: string, name: string): KeyPair {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

export class TestPki {
  readonly dir: string;
  /** The CA a test configures as trusted. */
  readonly ca: KeyPair;
  /** A CA nobody is told to trust. */
  readonly untrustedCa: KeyPair;
  private issued = 0;

  private constructor(dir: string) {
    this.dir = dir;
    for (const [name, cn] of [['ca', 'Tollgate Test CA'], ['untrusted-ca', 'Untrusted Test CA']] as const) {
      openssl(['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${cn}`, '-days', '2'], dir);
    }
    this.ca = pair(dir, 'ca');
    this.untrustedCa = pair(dir, 'untrusted-ca');
  }

  /** A new PKI in a temp directory; `close()` removes it. */
  static create(): TestPki {
    return new TestPki(mkdtempSync(join(tmpdir(), 'tollgate-pki-')));
  }

  /** A server certificate (extendedKeyUsage serverAuth) with `names` as DNS SANs. */
  issue(options: IssueOptions): KeyPair {
    const name = `server-${++this.issued}`;
    const ca = options.untrustedCa === true ? 'untrusted-ca' : 'ca';
    const first = options.names[0];
    if (first === undefined) throw new Error('a certificate needs a name');
    openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${first}`], this.dir);
    writeFileSync(
      join(this.dir, `${name}.ext`),
      `subjectAltName=${options.names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`,
    );
    openssl(
      ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
        '-out', `${name}.pem`, '-extfile', `${name}.ext`, '-days', options.expired === true ? '-1' : '2'],
      this.dir,
    );
    return pair(this.dir, name);
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
