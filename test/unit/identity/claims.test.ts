import { expect } from 'chai';
import {
  claimHeaderValue,
  claimStrings,
  describeValue,
  getClaim,
  parseClaimPath,
  sanitizeHeaderValue,
} from '../../../src/identity/claims.js';

describe('identity/claims', () => {
  describe('parseClaimPath', () => {
    it('splits dot paths and keeps quoted segments whole', () => {
      expect(parseClaimPath('email')).to.deep.equal(['email']);
      expect(parseClaimPath('realm_access.roles')).to.deep.equal(['realm_access', 'roles']);
      expect(parseClaimPath('"https://myorg.com/groups"')).to.deep.equal([
        'https://myorg.com/groups',
      ]);
      expect(parseClaimPath('"https://myorg.com".groups')).to.deep.equal([
        'https://myorg.com',
        'groups',
      ]);
      expect(parseClaimPath('resource_access."tollgate.gw".roles')).to.deep.equal([
        'resource_access',
        'tollgate.gw',
        'roles',
      ]);
    });

    it('refuses paths it cannot parse', () => {
      for (const bad of ['', '.', 'a.', '.a', 'a..b', '"open', '"a"b', 'a"b', '""']) {
        expect(parseClaimPath(bad), bad).to.equal(undefined);
      }
    });
  });

  describe('getClaim', () => {
    const claims = {
      email: 'alice@myorg.com',
      realm_access: { roles: ['admin', 'user'] },
      'https://myorg.com/groups': ['ml'],
      'https://myorg.com': { groups: ['nested'] },
      'a.b': 'dotted key',
      a: { b: 'nested b' },
      list: [{ x: 1 }],
    };

    it('reads top-level and nested claims', () => {
      expect(getClaim(claims, 'email')).to.equal('alice@myorg.com');
      expect(getClaim(claims, 'realm_access.roles')).to.deep.equal(['admin', 'user']);
    });

    it('matches an exact top-level key first, so namespaced claims work unquoted', () => {
      expect(getClaim(claims, 'https://myorg.com/groups')).to.deep.equal(['ml']);
      expect(getClaim(claims, 'a.b')).to.equal('dotted key');
      expect(getClaim(claims, '"a".b')).to.equal('nested b');
    });

    it('reads quoted segments with dots and slashes', () => {
      expect(getClaim(claims, '"https://myorg.com/groups"')).to.deep.equal(['ml']);
      expect(getClaim(claims, '"https://myorg.com".groups')).to.deep.equal(['nested']);
    });

    it('finds nothing through arrays, scalars, missing keys or the prototype', () => {
      expect(getClaim(claims, 'list.x')).to.equal(undefined);
      expect(getClaim(claims, 'email.length')).to.equal(undefined);
      expect(getClaim(claims, 'realm_access.missing')).to.equal(undefined);
      expect(getClaim(claims, '__proto__')).to.equal(undefined);
      expect(getClaim(claims, 'realm_access.constructor')).to.equal(undefined);
      expect(getClaim(claims, 'a..b')).to.equal(undefined);
    });
  });

  describe('claimStrings', () => {
    it('turns scalars and lists into strings, dropping what is not scalar', () => {
      expect(claimStrings('ml')).to.deep.equal(['ml']);
      expect(claimStrings(42)).to.deep.equal(['42']);
      expect(claimStrings(true)).to.deep.equal(['true']);
      expect(claimStrings(['a', 1, false, null, { x: 1 }, ['n']])).to.deep.equal([
        'a',
        '1',
        'false',
      ]);
      expect(claimStrings(undefined)).to.deep.equal([]);
      expect(claimStrings(null)).to.deep.equal([]);
      expect(claimStrings({ a: 1 })).to.deep.equal([]);
      expect(claimStrings(Number.NaN)).to.deep.equal([]);
    });
  });

  describe('sanitizeHeaderValue', () => {
    it('breaks CR/LF header injection into plain text', () => {
      const out = sanitizeHeaderValue('alice@myorg.com\r\nx-tenant-id: finance');
      expect(out).to.equal('alice@myorg.com  x-tenant-id: finance');
      expect(out).not.to.match(/[\r\n]/);
    });

    it('removes NUL, DEL, C1 controls and invisible formatting characters', () => {
      expect(sanitizeHeaderValue('a\u0000b\u007fc\u0085d\u009be')).to.equal('abc de');
      expect(sanitizeHeaderValue('ad\u200bmin\u202e')).to.equal('admin');
      expect(sanitizeHeaderValue('x\u2028y\u2029z')).to.equal('x y z');
      expect(sanitizeHeaderValue('lone \ud800 surrogate')).to.equal('lone  surrogate');
    });

    it('keeps printable non-ASCII text', () => {
      expect(sanitizeHeaderValue('José Müller 日本')).to.equal('José Müller 日本');
    });

    it('trims and caps the length in UTF-8 bytes without splitting a character', () => {
      expect(sanitizeHeaderValue('  padded \t')).to.equal('padded');
      expect(sanitizeHeaderValue('x'.repeat(5000))).to.have.length(1024);
      expect(sanitizeHeaderValue('abcdef', 4)).to.equal('abcd');
      const capped = sanitizeHeaderValue('ééé', 5); // each é is 2 bytes
      expect(capped).to.equal('éé');
      expect(Buffer.byteLength(sanitizeHeaderValue('日'.repeat(400)), 'utf8')).to.be.at.most(1024);
    });
  });

  describe('claimHeaderValue', () => {
    it('renders scalars and joins lists with commas', () => {
      expect(claimHeaderValue('alice@myorg.com')).to.equal('alice@myorg.com');
      expect(claimHeaderValue(7)).to.equal('7');
      expect(claimHeaderValue(['ml-team', 'eng'])).to.equal('ml-team,eng');
      expect(claimHeaderValue(['/team/ml', 3, { no: 1 }])).to.equal('/team/ml,3');
    });

    it('percent-encodes every element of a list: no raw control, separator or non-ASCII byte', () => {
      expect(claimHeaderValue(['ok', 'evil\r\nx-injected: 1', '\u0000'])).to.equal(
        'ok,evil%0D%0Ax-injected:%201,%00',
      );
    });

    it('keeps a comma inside a group name apart from the separator, and round-trips', () => {
      const groups = ['ml,research', 'eng', 'José Müller', '100%', 'ad\u200bmin', '日本'];
      const out = claimHeaderValue(groups)!;
      expect(out).to.equal('ml%2Cresearch,eng,Jos%C3%A9%20M%C3%BCller,100%25,ad%E2%80%8Bmin,%E6%97%A5%E6%9C%AC');
      expect(out).to.match(/^[\x21-\x7e]+$/);
      expect(out.split(',').map(decodeURIComponent)).to.deep.equal(groups);
      expect(claimHeaderValue(['a,b'])).to.not.equal(claimHeaderValue(['a', 'b']));
    });

    it('leaves e-mail addresses, URLs and paths as they are', () => {
      expect(claimHeaderValue('first.last+tag@my-org.example')).to.equal('first.last+tag@my-org.example');
      expect(claimHeaderValue('https://idp.example/groups/ml')).to.equal('https://idp.example/groups/ml');
      expect(claimHeaderValue('lone \ud800 surrogate')).to.equal('lone%20%EF%BF%BD%20surrogate');
    });

    it('is undefined when there is nothing to send', () => {
      expect(claimHeaderValue(undefined)).to.equal(undefined);
      expect(claimHeaderValue(null)).to.equal(undefined);
      expect(claimHeaderValue({ a: 1 })).to.equal(undefined);
      expect(claimHeaderValue([])).to.equal(undefined);
      expect(claimHeaderValue('')).to.equal(undefined);
      expect(claimHeaderValue(['', ''])).to.equal(undefined);
    });

    it('drops whole trailing list elements rather than cutting one', () => {
      expect(claimHeaderValue(['admins-readonly', 'eng'], 10)).to.equal(undefined);
      expect(claimHeaderValue(['eng', 'admins-readonly'], 10)).to.equal('eng');
      expect(claimHeaderValue(['aaaa', 'bbbb'], 9)).to.equal('aaaa,bbbb');
      expect(claimHeaderValue(['aaaa', 'bbbb'], 8)).to.equal('aaaa');
      const many = Array.from({ length: 500 }, (_, i) => `group-${i}`);
      const out = claimHeaderValue(many);
      expect(out!.length).to.be.at.most(1024);
      expect(out!.split(',').every((g) => many.includes(g))).to.equal(true);
    });

    it('caps a long single value without cutting an escape', () => {
      expect(claimHeaderValue('y'.repeat(3000))).to.have.length(1024);
      expect(claimHeaderValue('y'.repeat(1024))).to.have.length(1024);
      expect(claimHeaderValue('y'.repeat(1025))).to.have.length(1024);
      expect(claimHeaderValue(`${'y'.repeat(1023)}é`)).to.have.length(1023);
      const capped = claimHeaderValue('é'.repeat(400))!;
      expect(capped.length).to.be.at.most(1024);
      expect(decodeURIComponent(capped)).to.equal('é'.repeat(capped.length / 6));
    });
  });

  describe('describeValue', () => {
    it('quotes a hostile value safely and briefly', () => {
      const out = describeValue(`kid"\\\r\n${'z'.repeat(500)}`);
      expect(out).to.match(/^"kid {2}z+"$/);
      expect(out.length).to.be.at.most(82);
      expect(describeValue(['a'])).to.equal('"[a]"');
    });
  });
});
