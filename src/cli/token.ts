/**
 * `tollgate token`: prints a fresh token of the current login (refreshed when it is about to
 * expire), or mints a development token from the demo issuer's saved keys: with `--demo` or any
 * demo claim flag, and, as before logins existed, when no login is configured at all.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mintFromState } from '../dev/issuer.js';
import { DEMO_AUDIENCE } from '../dev/demo-config.js';
import { DEMO_CLAIMS, stateDir } from './demo.js';
import { loginToken } from './login/commands.js';

interface Out {
  write(chunk: string): unknown;
}

const DEMO_FLAGS = ['sub', 'email', 'groups', 'tenant', 'expires-in'] as const;

export const TOKEN_HELP = `usage: tollgate token [--profile NAME]
       tollgate token --demo [--sub S] [--email E] [--groups a,b] [--tenant T] [--expires-in 1h]
`;

export async function tokenCommand(rest: string[], out: Out, err: Out): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: rest,
      options: {
        demo: { type: 'boolean' },
        profile: { type: 'string' },
        ...Object.fromEntries(DEMO_FLAGS.map((f) => [f, { type: 'string' as const }])),
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    err.write(`tollgate: ${e instanceof Error ? e.message : String(e)}\n\n${TOKEN_HELP}`);
    return 2;
  }
  const demoAsked = values['demo'] === true || DEMO_FLAGS.some((f) => values[f] !== undefined);
  const profile = typeof values['profile'] === 'string' ? values['profile'] : undefined;
  if (demoAsked && profile !== undefined) {
    err.write(`tollgate: --profile names a login; the demo flags mint from the demo issuer: use one or the other\n\n${TOKEN_HELP}`);
    return 2;
  }
  if (!demoAsked) {
    const code = await loginToken(profile, out, err);
    if (code !== undefined) return code;
  }
  const text = (k: (typeof DEMO_FLAGS)[number]) => (typeof values[k] === 'string' ? values[k] : undefined);
  try {
    out.write(`${await demoToken({ sub: text('sub'), email: text('email'), groups: text('groups'), tenant: text('tenant'), 'expires-in': text('expires-in') })}\n`);
  } catch (e) {
    if (demoAsked) throw e;
    throw new Error(`not logged in (run \`tollgate login\`), and ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return 0;
}

/** A demo token with the demo's claims, or undefined when `tollgate demo` never ran here. */
export async function demoTokenIfAny(): Promise<string | undefined> {
  try {
    return await demoToken({});
  } catch {
    return undefined;
  }
}

async function demoToken(values: {
  sub?: string | undefined;
  email?: string | undefined;
  groups?: string | undefined;
  tenant?: string | undefined;
  'expires-in'?: string | undefined;
}): Promise<string> {
  const claims = {
    sub: values.sub ?? (values.email ? values.email.split('@')[0] : DEMO_CLAIMS.sub),
    email: values.email ?? DEMO_CLAIMS.email,
    groups: values.groups !== undefined ? values.groups.split(',').map((g) => g.trim()).filter(Boolean) : DEMO_CLAIMS.groups,
    tenant_id: values.tenant ?? DEMO_CLAIMS.tenant_id,
  };
  return mintFromState(join(stateDir(), 'dev-issuer.json'), claims, {
    audience: DEMO_AUDIENCE,
    ...(values['expires-in'] !== undefined ? { expiresIn: values['expires-in'] } : {}),
  });
}
