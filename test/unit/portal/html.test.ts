import { expect } from 'chai';
import type { MeView } from '../../../src/check/me.js';
import { esc, mePage } from '../../../src/portal/html.js';

const EVIL = `<script>alert("x")</script>'&\``;

const VIEW: MeView = {
  at: '2026-12-05T12:00:00.000Z',
  identity: {
    provider: 'corp',
    issuer: 'https://idp.example.com',
    subject: EVIL,
    user: EVIL,
    groups: [EVIL],
    tenant: 'acme',
    expiresAt: '2026-12-05T13:00:00.000Z',
  },
  claims: { email: EVIL, roles: [EVIL] },
  models: [EVIL, 'gpt-4o-mini'],
  authorization: { default: 'deny', mode: 'enforce' },
  rules: [{ name: EVIL, action: 'allow', mode: 'enforce', applies: true }],
  rateLimits: [{ name: EVIL, key: 'user', requestsPerUnit: 10, unit: 'minute', buckets: [{ key: `rl:${EVIL}`, count: 3, remaining: 7 }] }],
  budgets: [
    {
      name: `user:${EVIL}`,
      subject: EVIL,
      kind: 'user',
      limit: 50000,
      used: 1234,
      reserved: 0,
      remaining: 48766,
      period: 'day',
      timeZone: 'UTC',
      periodId: '2026-12-05',
      periodStart: '2026-12-05T00:00:00.000Z',
      resetsAt: '2026-12-06T00:00:00.000Z',
    },
  ],
};

describe('portal: pages', () => {
  it('escapes markup, quotes and backticks', () => {
    expect(esc(EVIL)).to.equal('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#39;&#38;&#96;');
  });

  it('renders the Me view with every value escaped and no inline script or style', () => {
    const page = mePage(VIEW, { csrf: 'c"srf' });
    expect(page).to.not.include('<script>alert');
    expect(page).to.not.include(`"x"`);
    expect(page.match(/<script\b/g)).to.have.length(1); // only /portal.js
    expect(page).to.include('<script src="/portal.js" defer></script>');
    expect(page).to.not.match(/\son[a-z]+=/i); // no inline handlers
    expect(page).to.not.match(/style=/i);
    expect(page).to.include('name="csrf" value="c&#34;srf"');
  });

  it('shows the numbers of the view as they are', () => {
    const page = mePage(VIEW, { csrf: 'x' });
    expect(page).to.include('<data value="1234" class="used">1,234</data>');
    expect(page).to.include('<data value="48766" class="remaining">48,766</data>');
    expect(page).to.include('<data value="7">7</data>');
  });

  it('puts the gateway URL in the snippets, never a token', () => {
    const page = mePage(VIEW, { csrf: 'x', gatewayUrl: 'https://llm.example.com/v1' });
    expect(page).to.include('https://llm.example.com/v1/chat/completions');
    expect(page).to.include('$TOLLGATE_TOKEN');
    expect(page).to.include('base_url=&#34;https://llm.example.com/v1&#34;');
  });
});
