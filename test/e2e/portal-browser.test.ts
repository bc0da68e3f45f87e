/**
 * The portal in a real browser: Debian's chromium (installed by scripts/setup.sh) driven by
 * playwright-core, no browser download. Signs in through oidc-provider's real login and consent
 * pages, copies the token with the page's own button (the page's script, under its CSP), makes
 * SDK calls through real Envoy, checks the page's numbers against the ledger, saves a screenshot
 * to a temp dir, and checks that another user's data is not reachable from their session.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import OpenAI from 'openai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { withPortalStack } from '../helpers/portal.js';

const CHROMIUM = process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium';

describe('e2e: the portal in a real browser (chromium + playwright-core)', function () {
  this.timeout(120_000);
  const e2e = withPortalStack();
  let browser: Browser;
  let shots = '';
  const cspErrors: string[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no chromium at ${CHROMIUM}: run \`npm run setup\` (installs Debian's chromium) or set CHROMIUM_BIN`);
    }
    // Root in a container has no user namespace for chromium's sandbox.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    shots = await mkdtemp(join(tmpdir(), 'tollgate-portal-shots-'));
  });

  after(async () => {
    await browser?.close();
    if (shots !== '') await rm(shots, { recursive: true, force: true });
  });

  /** A fresh browser profile, signed in as `login` on the provider's real pages. */
  async function signedIn(login: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: e2e.url });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text());
    });
    await page.goto(`${e2e.url}/`);
    await page.getByRole('link', { name: 'Sign in' }).click();
    for (let step = 0; step < 6 && !page.url().startsWith(`${e2e.url}/`); step++) {
      const loginBox = page.locator('input[name="login"]');
      if ((await loginBox.count()) > 0) {
        await loginBox.fill(login);
        await page.locator('input[name="password"]').fill('any');
      }
      // A click that submits waits for the navigation to start; then the next page loads.
      await page.locator('button[type="submit"]').first().click();
      await page.waitForLoadState('load');
    }
    await page.waitForURL(`${e2e.url}/`);
    return { context, page };
  }

  async function budgetNumbers(page: Page, name: string): Promise<{ used: number; reserved: number; remaining: number }> {
    const row = page.locator('#budgets tbody tr').filter({ has: page.locator(`td:text-is("${name}")`) });
    const num = async (cls: string): Promise<number> => Number(await row.locator(`data.${cls}`).getAttribute('value'));
    return { used: await num('used'), reserved: await num('reserved'), remaining: await num('remaining') };
  }

  it('signs in, copies the token with the button, and shows the ledger after real SDK calls', async () => {
    const { context, page } = await signedIn('ada');
    expect(await page.locator('#user').textContent()).to.equal('ada@example.com');
    // The session cookie is HttpOnly: the page's script cannot read it.
    expect(await page.evaluate<string>('document.cookie')).to.equal('');
    await page.getByRole('button', { name: 'Copy my current token' }).click();
    await expect_text(page, '#copy-status', 'Token copied.');
    const token = await page.evaluate<string>('navigator.clipboard.readText()');
    expect(token.split('.')).to.have.length(3);
    const sdk = new OpenAI({ baseURL: `${e2e.stack.ready.envoy}/v1`, apiKey: token, maxRetries: 0 });
    for (let i = 0; i < 3; i++) await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello ${i}` }] });
    await e2e.settled('user=ada@example.com');
    await page.reload();
    const [user, tenant] = await Promise.all([e2e.ledger('user=ada@example.com'), e2e.ledger('tenant=acme')]);
    expect(await budgetNumbers(page, 'user:ada@example.com')).to.deep.equal({ used: user.used, reserved: user.reserved, remaining: user.remaining });
    expect(await budgetNumbers(page, 'tenant:acme')).to.deep.equal({ used: tenant.used, reserved: tenant.reserved, remaining: tenant.remaining });
    expect(user.used).to.be.greaterThan(0);
    expect(await page.content()).to.not.include(token);
    // Today's row of the daily usage: the three calls, their tokens as the user budget (per day) holds them.
    const today = page.locator('#daily-usage tbody tr').filter({ has: page.locator(`td:text-is("${new Date().toISOString().slice(0, 10)}")`) });
    expect(Number(await today.locator('data.requests').getAttribute('value'))).to.equal(3);
    expect(Number(await today.locator('data.tokens').getAttribute('value'))).to.equal(user.used);
    expect(await page.locator('#daily-chart rect.bar').count()).to.equal(new Date().getUTCDate());
    const shot = join(shots, 'me.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).to.be.greaterThan(1000);
    expect(cspErrors).to.deep.equal([]);
    await context.close();
  });

  it('opens the Owners view to owners only, with the numbers of the ledger', async () => {
    const ada = await signedIn('ada'); // ml-team: owner of her tenant, acme
    await ada.page.getByRole('link', { name: 'Owners view' }).click();
    await ada.page.waitForURL(`${e2e.url}/owners`);
    expect(await ada.page.locator('#owners-tenant').textContent()).to.equal('acme');
    const tenant = await e2e.ledger('tenant=acme');
    const total = Number(await ada.page.locator('#tenant-total data.tokens').getAttribute('value'));
    expect(total).to.equal(tenant.used);
    const line = ada.page.locator('p.budget-line[data-budget="tenant:acme"]');
    expect(Number(await line.locator('data.used').getAttribute('value'))).to.equal(tenant.used);
    expect(Number(await line.locator('data.remaining').getAttribute('value'))).to.equal(tenant.remaining);
    const adaRow = ada.page.locator('#by-user tbody tr').filter({ has: ada.page.locator('td:text-is("ada@example.com")') });
    expect(Number(await adaRow.locator('data.tokens').getAttribute('value'))).to.equal(total);
    await ada.page.screenshot({ path: join(shots, 'owners.png'), fullPage: true });
    // Not another tenant's.
    expect((await ada.page.goto(`${e2e.url}/owners?tenant=globex`))?.status()).to.equal(403);
    // Bob (sales) is no owner: no link, and the page is refused.
    const bob = await signedIn('bob');
    expect(await bob.page.locator('#owners-link').count()).to.equal(0);
    expect((await bob.page.goto(`${e2e.url}/owners`))?.status()).to.equal(403);
    // Cy (llm-platform) sees every tenant with usage, acme among them.
    const cy = await signedIn('cy');
    expect((await cy.page.goto(`${e2e.url}/owners?tenant=acme`))?.status()).to.equal(200);
    expect(Number(await cy.page.locator('#tenant-total data.tokens').getAttribute('value'))).to.equal(tenant.used);
    expect(await cy.page.locator('#tenants').textContent()).to.include('acme');
    expect(cspErrors).to.deep.equal([]);
    for (const c of [ada, bob, cy]) await c.context.close();
  });

  it("another user's session shows only theirs and cannot reach another's token", async () => {
    const ada = await signedIn('ada');
    const bob = await signedIn('bob');
    expect(await bob.page.locator('#user').textContent()).to.equal('bob@example.com');
    const html = await bob.page.content();
    expect(html).to.not.include('ada@example.com');
    expect(html).to.not.include('ada%40example.com');
    const adaCsrf = await ada.page.locator('meta[name="csrf-token"]').getAttribute('content');
    // From Bob's page, with Ada's CSRF token: refused (the session decides whose data, and it is Bob's).
    const status = await bob.page.evaluate(
      async (csrf) => (await fetch('/token', { method: 'POST', headers: { 'x-csrf-token': csrf ?? '' } })).status,
      adaCsrf,
    );
    expect(status).to.equal(403);
    // Sign out with the keyboard: focus the button and press Enter.
    await bob.page.getByRole('button', { name: 'Sign out' }).focus();
    await bob.page.keyboard.press('Enter');
    await bob.page.getByRole('link', { name: 'Sign in' }).waitFor({ timeout: 10_000 });
    expect(bob.page.url()).to.equal(`${e2e.url}/`);
    // Ada's session is untouched by Bob's sign-out.
    await ada.page.reload();
    expect(await ada.page.locator('#user').textContent()).to.equal('ada@example.com');
    await ada.context.close();
    await bob.context.close();
  });
});

async function expect_text(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector).filter({ hasText: text }).waitFor({ timeout: 5000 });
}
