/**
 * `tollgate demo`: a dev OIDC issuer, a dev OpenAI-compatible upstream (or real OpenAI when
 * OPENAI_API_KEY is set), Envoy and the sidecar, all on this machine. Prints a token and
 * paste-ready snippets.
 */
import { join } from 'node:path';
import { parseConfig } from '../config/load.js';
import { DEMO_AUDIENCE, demoConfigYaml } from '../dev/demo-config.js';
import { DevIssuer } from '../dev/issuer.js';
import { DevUpstream } from '../dev/upstream.js';
import { runStack, readyLine } from '../stack/run.js';
import { createLogger } from '../telemetry/logger.js';
import { stdout } from '../telemetry/output.js';
import { tollgateHome } from './home.js';
import { guardProcess } from './serve-shared.js';
import { exitWithin, untilSignal } from './signals.js';

/** Where the demo keeps its issuer keys, so `tollgate token` can mint for it. */
export function stateDir(): string {
  return tollgateHome();
}

export const DEMO_CLAIMS = { sub: 'dev-user', email: 'dev@example.com', groups: ['ml-team'], tenant_id: 'demo' };

export async function demo(port: number): Promise<number> {
  const logger = createLogger({ level: process.env['TOLLGATE_LOG_LEVEL'] ?? 'warn', destination: process.stderr });
  guardProcess(logger);
  const realOpenAI = !!process.env['OPENAI_API_KEY'];
  const issuer = await DevIssuer.start({ statePath: join(stateDir(), 'dev-issuer.json'), audience: DEMO_AUDIENCE });
  const upstream = realOpenAI ? undefined : await DevUpstream.start();
  let keyEnv = 'OPENAI_API_KEY';
  if (!realOpenAI) {
    keyEnv = 'TOLLGATE_DEV_UPSTREAM_KEY';
    process.env[keyEnv] = 'sk-tollgate-dev-upstream';
  }
  const config = parseConfig(demoConfigYaml(issuer.url, keyEnv), '<embedded demo config>');
  const upstreamUrl = upstream?.url ?? 'https://api.openai.com';
  const stack = await runStack({ config, upstreamUrl, port, logger }).catch(async (err: unknown) => {
    await issuer.close();
    await upstream?.close();
    throw err;
  });
  const token = await issuer.mint(DEMO_CLAIMS);
  stdout().write(readyLine(stack, { issuer: issuer.url, upstream: upstreamUrl }));
  stdout().write(banner(stack.envoyUrl, token, realOpenAI ? 'OpenAI (OPENAI_API_KEY)' : `dev upstream ${upstreamUrl}`));
  await untilSignal();
  const graceMs = config.server.shutdownGraceSeconds * 1000;
  exitWithin(graceMs);
  await stack.stop(graceMs);
  await issuer.close();
  await upstream?.close();
  return 0;
}

function banner(envoyUrl: string, token: string, upstream: string): string {
  return `
Tollgate demo is running: Envoy ${envoyUrl} -> ${upstream}

Token (dev@example.com, groups ml-team, tenant demo; mint more with \`npx tollgate token --email you@example.com\`):

export TOKEN=${token}

curl:

curl -s ${envoyUrl}/v1/chat/completions \\
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'

OpenAI SDK (Node):

import OpenAI from 'openai';
const client = new OpenAI({ baseURL: '${envoyUrl}/v1', apiKey: process.env.TOKEN });
const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] });
console.log(r.choices[0].message.content, r.usage);

Who you are to the gateway, your limits and budgets with what is left:

npx tollgate whoami --url ${envoyUrl}

Press Ctrl-C to stop.
`;
}
