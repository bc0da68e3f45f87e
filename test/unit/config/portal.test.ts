import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { describeProblems, MINIMAL } from './helpers.js';

const PORTAL = `${MINIMAL}portal:
  listen: 127.0.0.1:8082
  provider: corp
  clientId: tollgate-portal
  publicUrl: https://portal.example.com/
`;

describe('config: portal', () => {
  it('is off unless configured', () => {
    expect(parseConfig(MINIMAL).portal).to.equal(undefined);
  });

  it('reads the keys with their defaults (openid always asked for, trailing slash dropped)', () => {
    expect(parseConfig(PORTAL).portal).to.deep.equal({
      listen: '127.0.0.1:8082',
      provider: 'corp',
      clientId: 'tollgate-portal',
      publicUrl: 'https://portal.example.com',
      scope: 'openid email profile',
      token: 'access',
      sessionTtlSeconds: 28800,
      maxSessions: 10000,
    });
    const full = parseConfig(`${PORTAL}  clientSecret: { env: PORTAL_SECRET }
  scope: email groups
  resource: https://gateway.example.com
  token: id
  gatewayUrl: https://llm.example.com/v1/
  sessionTtlSeconds: 3600
  maxSessions: 50
`).portal;
    expect(full).to.include({ scope: 'openid email groups', resource: 'https://gateway.example.com', token: 'id', gatewayUrl: 'https://llm.example.com/v1', sessionTtlSeconds: 3600, maxSessions: 50 });
    expect(full?.clientSecret).to.deep.equal({ env: 'PORTAL_SECRET' });
  });

  it('reports every bad key with its path and line', () => {
    const problems = describeProblems(`${MINIMAL}portal:
  listen: nowhere
  provider: other
  clientSecret: { env: "1bad" }
  publicUrl: "https://portal.example.com/?x=1"
  token: refresh
  sessionTtlSeconds: 5
  maxSessions: 0
  colour: blue
`);
    expect(problems).to.have.members([
      '11: portal.colour: unknown key `colour` (expected one of: listen, provider, clientId, clientSecret, publicUrl, scope, resource, token, gatewayUrl, sessionTtlSeconds, maxSessions, owners)',
      '4: portal.clientId: is required',
      '4: portal.listen: expected host:port (port 0-65535, 0 = any free port), got "nowhere"',
      '5: portal.provider: names no provider of `authentication` (have: corp)',
      '6: portal.clientSecret.env: not a valid environment variable name: "1bad"',
      '7: portal.publicUrl: must be a plain http(s) URL without query, fragment or credentials',
      '8: portal.token: expected one of access | id, got the string "refresh"',
      '9: portal.sessionTtlSeconds: must be between 60 and 604800, got 5',
      '10: portal.maxSessions: must be between 1 and 1000000, got 0',
    ]);
  });

  it('reads who sees the Owners view, and refuses an owners block naming nobody', () => {
    const owners = parseConfig(`${PORTAL}  owners: { groups: [llm-platform], tenantGroups: "*" }\n`).portal?.owners;
    expect(owners).to.deep.equal({ groups: ['llm-platform'], tenantGroups: ['*'] });
    expect(describeProblems(`${PORTAL}  owners: {}\n`)).to.deep.equal([
      '8: portal.owners: names nobody: list `groups` (every tenant) and/or `tenantGroups` (their own tenant)',
    ]);
    expect(describeProblems(`${PORTAL}  owners: { admins: [x] }\n`)[0]).to.match(/portal\.owners\.admins: unknown key `admins`/);
  });

  it('needs a single process: sessions live in memory', () => {
    const problems = describeProblems(`${PORTAL}server: { workers: 2 }\nstore: { redis: { url: "redis://127.0.0.1:6379" } }\n`);
    expect(problems.join('\n')).to.match(/portal: needs `server.workers: 1`/);
  });
});
