import { expect } from 'chai';
import fc from 'fast-check';
import { duplicateMember, scanObject } from '../../../src/request/json-scan.js';

describe('request/json-scan', () => {
  it('property: finds every top-level member and its exact value span, whatever the spacing and escapes', () => {
    const key = fc.string({ unit: fc.constantFrom('a', 'b', '"', '\\', 'é', ' ', '{', ']', '\n') , maxLength: 6 });
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }), fc.constantFrom('', ' ', '\n\t '), (obj, ws) => {
        const text = `${ws}{${ws}${Object.entries(obj).map(([k, v]) => `${JSON.stringify(k)}${ws}:${ws}${JSON.stringify(v, null, ws.length > 0 ? 1 : 0)}`).join(`${ws},${ws}`)}${ws}}${ws}`;
        const layout = scanObject(text);
        expect(layout, text).to.not.equal(undefined);
        expect(layout?.members.map((m) => m.name)).to.deep.equal(Object.keys(obj));
        for (const m of layout?.members ?? []) {
          // As JSON reads them: -0 has no spelling of its own.
          expect(JSON.parse(text.slice(m.start, m.end)), text).to.deep.equal(JSON.parse(JSON.stringify(obj[m.name])));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('skips a multi-megabyte string in one jump and still sees the member after it', () => {
    const text = `{"messages":[{"content":[{"image_url":{"url":"data:image/png;base64,${'A'.repeat(8 << 20)}\\\\"}}]}],"model":"m","model":"n"}`;
    const layout = scanObject(text);
    expect(layout?.members.map((m) => m.name)).to.deep.equal(['messages', 'model', 'model']);
    expect(duplicateMember(layout!)).to.equal('model');
  });

  it('is undefined for text that is not one object', () => {
    for (const text of ['[1]', '{"a":1} {}', '{"a" 1}', '{"a":"x}', '"x"', '']) expect(scanObject(text), text).to.equal(undefined);
  });
});
