/**
 * The hand-written CheckResponse encoder must write exactly the bytes proto-loader writes
 * (and that Envoy has always been sent), for our own answers and for any shape the type allows.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { encodeCheckResponse } from '../../../src/edge/check-encode.js';
import { toCheckResponse } from '../../../src/edge/authz-adapter.js';
import {
  services,
  toStruct,
  type CheckResponse,
  type HeaderValueOption,
} from '../../../src/edge/protos.js';
import { deny } from '../../../src/domain/denials.js';
import type { Decision } from '../../../src/domain/decision.js';
import type { Identity } from '../../../src/domain/identity.js';

const check = services().authorization['Check'] as unknown as {
  responseSerialize(value: CheckResponse): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
};
const reference = (r: CheckResponse): Buffer => check.responseSerialize(r);

const IDENTITY: Identity = {
  provider: 'main-idp',
  issuer: 'https://idp.example',
  subject: 'u-1',
  user: 'ann@myorg.com',
  groups: ['eng', 'ml-team'],
  tenant: 'acme',
  claims: { sub: 'u-1' },
  expiresAt: 4_000_000_000,
};

const text = fc.string({ unit: 'grapheme', maxLength: 30 });
const json: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    text,
    fc.double({ noNaN: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(text, tie('value'), { maxKeys: 4 }),
  ),
})).value;
const headers = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), text, { maxKeys: 6 });

describe('edge/check-encode', () => {
  it('property: an allow answer encodes exactly as proto-loader encodes it', () => {
    fc.assert(
      fc.property(
        headers,
        headers,
        fc.array(text, { maxLength: 4 }),
        fc.dictionary(text, json, { maxKeys: 8 }),
        (set, response, remove, metadata) => {
          const decision: Decision = {
            allow: {
              identity: IDENTITY,
              setHeaders: set,
              removeHeaders: remove,
              responseHeaders: response,
              metadata,
            },
          };
          const r = toCheckResponse(decision);
          expect(encodeCheckResponse(r).equals(reference(r))).to.equal(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a deny answer encodes exactly as proto-loader encodes it', () => {
    const reasons = [
      'missing_token',
      'rate_limited',
      'store_unavailable',
      'access_denied',
      'body_too_large',
      'internal_error',
    ] as const;
    fc.assert(
      fc.property(fc.constantFrom(...reasons), text, headers, (reason, message, extra) => {
        const r = toCheckResponse({ deny: deny(reason, message, { headers: extra }) });
        expect(encodeCheckResponse(r).equals(reference(r))).to.equal(true);
      }),
      { numRuns: 200 },
    );
  });

  it('encodes every field the type allows, zero values included, like protobufjs', () => {
    const option: HeaderValueOption = {
      header: { key: 'x-raw', raw_value: Buffer.from([0, 1, 255]) },
      append_action: 2,
      keep_empty_value: false,
    };
    const cases: CheckResponse[] = [
      { status: { code: 0 } },
      { status: { code: -1, message: '' }, ok_response: {} },
      {
        status: { code: 7 },
        denied_response: { status: { code: 403 }, body: '' },
        dynamic_metadata: { fields: {} },
      },
      { status: { code: 0 }, ok_response: { headers: [option], headers_to_remove: ['a', ''] } },
      {
        status: { code: 0 },
        dynamic_metadata: toStruct({
          big: 'é'.repeat(300),
          ascii: 'x'.repeat(200),
          n: -0,
          list: [[], {}, null],
        }),
      },
      {
        status: { code: 0 },
        dynamic_metadata: toStruct({ huge: 'y'.repeat(20_000), mixed: 'ab€'.repeat(50) }),
      },
    ];
    for (const r of cases)
      expect(encodeCheckResponse(r).toString('hex'), JSON.stringify(r)).to.equal(
        reference(r).toString('hex'),
      );
    // And it decodes to what was encoded.
    expect(check.responseDeserialize(encodeCheckResponse(cases[3]!))).to.have.nested.property(
      'ok_response.headers_to_remove[1]',
      '',
    );
  });
});
