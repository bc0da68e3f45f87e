/** `tollgate token`: mints a development token from the demo issuer's saved keys. */
import { join } from 'node:path';
import { mintFromState } from '../dev/issuer.js';
import { DEMO_AUDIENCE } from '../dev/demo-config.js';
import { DEMO_CLAIMS, stateDir } from './demo.js';

export async function token(values: {
  sub?: string | undefined;
  email?: string | undefined;
  groups?: string | undefined;
  tenant?: string | undefined;
  'expires-in'?: string | undefined;
}): Promise<number> {
  const claims = {
    sub: values.sub ?? (values.email ? values.email.split('@')[0] : DEMO_CLAIMS.sub),
    email: values.email ?? DEMO_CLAIMS.email,
    groups: values.groups !== undefined ? values.groups.split(',').map((g) => g.trim()).filter(Boolean) : DEMO_CLAIMS.groups,
    tenant_id: values.tenant ?? DEMO_CLAIMS.tenant_id,
  };
  const jwt = await mintFromState(join(stateDir(), 'dev-issuer.json'), claims, {
    audience: DEMO_AUDIENCE,
    ...(values['expires-in'] !== undefined ? { expiresIn: values['expires-in'] } : {}),
  });
  process.stdout.write(`${jwt}\n`);
  return 0;
}
