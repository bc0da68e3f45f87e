/**
 * A person at a browser, played over plain HTTP: follows redirects, keeps cookies, reads the
 * provider's real HTML forms and submits them. Enough for `oidc-provider`'s device, login and
 * consent pages; no JavaScript.
 */
export interface Page {
  readonly url: string;
  readonly status: number;
  readonly html: string;
}

export interface Form {
  readonly action: string;
  readonly method: string;
  readonly fields: Record<string, string>;
  readonly id: string | undefined;
}

export class TestBrowser {
  private readonly cookies = new Map<string, string>();
  /** Every URL loaded, in order, so a test can see where the flow went (e.g. a loopback callback). */
  readonly visited: string[] = [];

  async get(url: string): Promise<Page> {
    return this.load(url, { method: 'GET' });
  }

  /** A POST with this browser's cookies (what a page's script or form sends), redirects followed. */
  async post(url: string, headers: Record<string, string>, body = ''): Promise<Page> {
    return this.load(url, { method: 'POST', headers, body });
  }

  /** The value of a cookie the browser holds. */
  cookie(name: string): string | undefined {
    return this.cookies.get(name);
  }

  /** Submits `form` with its hidden fields, `extra` on top (a button's name=value, a typed login). */
  async submit(page: Page, form: Form, extra: Record<string, string> = {}): Promise<Page> {
    const target = new URL(form.action || page.url, page.url).href;
    const body = new URLSearchParams({ ...form.fields, ...extra });
    if (form.method === 'get') {
      const url = new URL(target);
      url.search = body.toString();
      return this.get(url.href);
    }
    return this.load(target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: body.toString() });
  }

  private async load(url: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<Page> {
    let current = url;
    let request = init;
    for (let hops = 0; hops < 20; hops++) {
      this.visited.push(current);
      const res = await fetch(current, {
        ...request,
        redirect: 'manual',
        headers: { ...request.headers, ...(this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}) },
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const eq = pair?.indexOf('=') ?? -1;
        if (pair === undefined || eq < 0) continue;
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(c)) this.cookies.delete(name);
        else this.cookies.set(name, value);
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location !== null) {
        await res.body?.cancel();
        current = new URL(location, current).href;
        request = { method: 'GET' };
        continue;
      }
      return { url: current, status: res.status, html: await res.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }
}

/** The forms of a page with their hidden (and pre-filled) inputs. */
export function forms(page: Page): Form[] {
  const out: Form[] = [];
  for (const m of page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = m[1] ?? '';
    const fields: Record<string, string> = {};
    for (const input of (m[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
      const a = input[1] ?? '';
      const name = attr(a, 'name');
      if (name !== undefined) fields[name] = decode(attr(a, 'value') ?? '');
    }
    out.push({ action: decode(attr(attrs, 'action') ?? ''), method: (attr(attrs, 'method') ?? 'get').toLowerCase(), fields, id: attr(attrs, 'id') });
  }
  return out;
}

function attr(attrs: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'i').exec(attrs);
  return m === null ? undefined : (m[1] ?? m[2]);
}

function decode(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/**
 * Signs in on the provider's pages until they stop asking: the device confirmation (Continue),
 * the login form (any password), the consent form, and self-submitting pages. `deny` aborts at
 * the device confirmation, or follows the cancel link of a browser flow's login page.
 * Returns the last page (the device flow's success page, or wherever the redirect ended).
 */
export async function signIn(browser: TestBrowser, start: string, login: string, opts: { deny?: boolean } = {}): Promise<Page> {
  let page = await browser.get(start);
  for (let step = 0; step < 10; step++) {
    const all = forms(page);
    // The login and consent pages of a browser flow offer a cancel link to the abort endpoint.
    const abort = /href="([^"]*\/abort)"/.exec(page.html)?.[1];
    if (opts.deny && abort !== undefined) {
      page = await browser.get(new URL(decode(abort), page.url).href);
      continue;
    }
    const confirm = all.find((f) => f.id === 'op.deviceConfirmForm');
    if (confirm !== undefined) {
      page = await browser.submit(page, confirm, opts.deny ? { abort: 'yes' } : { confirm: 'yes' });
      continue;
    }
    const form = all.find((f) => f.fields['prompt'] !== undefined);
    if (form === undefined) {
      // The provider's self-submitting page (a script posts it on load): submit it as a browser would.
      const auto = all[0];
      if (all.length !== 1 || auto === undefined || !/document\.forms\[0\]\.submit\(\)/.test(page.html)) return page;
      page = await browser.submit(page, auto);
      continue;
    }
    if (form.fields['prompt'] === 'login') page = await browser.submit(page, form, { login, password: 'any' });
    else if (form.fields['prompt'] === 'consent') page = await browser.submit(page, form);
    else return page;
  }
  throw new Error(`the provider kept asking after 10 forms; last page ${page.url}`);
}
