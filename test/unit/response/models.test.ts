import { expect } from 'chai';
import zlib from 'node:zlib';
import { MAX_MODEL_LIST_BYTES, ModelListRewriter, filterModelList } from '../../../src/response/models.js';
import { isModelList } from '../../../src/request/endpoint.js';
import { MeteringExchange } from '../../../src/response/flow.js';
import { AuthorizeStep } from '../../../src/check/authorize.js';
import {
  IDENTITY,
  JSON_TYPE,
  RecordingLedger,
  admission,
  metadataOf,
  headers,
} from './helpers.js';

const LIST = {
  object: 'list',
  data: ['gpt-4o', 'gpt-4o-mini', 'o3-mini', 'text-embedding-3-small'].map((id) => ({
    id,
    object: 'model',
    created: 1700000000,
    owned_by: 'system',
  })),
};
const listBytes = Buffer.from(JSON.stringify(LIST));
const ids = (body: Buffer) =>
  (JSON.parse(body.toString('utf8')) as typeof LIST).data.map((m) => m.id);
const onlyMini = (candidates: readonly string[]) => candidates.filter((m) => m.endsWith('-mini'));

describe('response/model list', () => {
  it('recognizes GET …/models with any prefix and nothing else', () => {
    expect(isModelList('GET', '/v1/models')).to.equal(true);
    expect(isModelList('get', '/openai/v1/models/?x=1')).to.equal(true);
    expect(isModelList('POST', '/v1/models')).to.equal(false);
    expect(isModelList('GET', '/v1/models/gpt-4o')).to.equal(false);
    expect(isModelList('GET', '/v1/chat/completions')).to.equal(false);
  });

  it('keeps only the allowed models and every other field', () => {
    const out = filterModelList(listBytes, undefined, onlyMini)!;
    expect(ids(out)).to.deep.equal(['gpt-4o-mini', 'o3-mini']);
    expect(JSON.parse(out.toString('utf8'))).to.deep.include({ object: 'list' });
    expect(JSON.parse(out.toString('utf8')).data[0]).to.deep.equal(LIST.data[1]);
  });

  it('leaves the bytes alone when nothing is removed or the body is not a list', () => {
    expect(filterModelList(listBytes, undefined, (c) => c)).to.equal(undefined);
    expect(filterModelList(Buffer.from('not json'), undefined, () => [])).to.equal(undefined);
    expect(filterModelList(Buffer.from('{"object":"list"}'), undefined, () => [])).to.equal(
      undefined,
    );
    expect(filterModelList(listBytes, 'zstd', () => [])).to.equal(undefined);
  });

  it('reads gzip, deflate and br lists and answers in the same encoding', () => {
    for (const [encoding, bytes, decode] of [
      ['gzip', zlib.gzipSync(listBytes), zlib.gunzipSync],
      ['deflate', zlib.deflateSync(listBytes), zlib.inflateSync],
      ['deflate', zlib.deflateRawSync(listBytes), zlib.inflateSync],
      ['br', zlib.brotliCompressSync(listBytes), zlib.brotliDecompressSync],
    ] as const) {
      const out = filterModelList(bytes, encoding, onlyMini)!;
      expect(ids(decode(out)), encoding).to.deep.equal(['gpt-4o-mini', 'o3-mini']);
    }
  });

  it('holds back a streamed list and sends it whole, filtered, with the last chunk', () => {
    const rewriter = new ModelListRewriter(undefined, onlyMini);
    const held = [
      rewriter.push(listBytes.subarray(0, 10), false),
      rewriter.push(listBytes.subarray(10, 50), false),
    ];
    expect(held.map((b) => b?.length)).to.deep.equal([0, 0]);
    expect(ids(rewriter.push(listBytes.subarray(50), true)!)).to.deep.equal([
      'gpt-4o-mini',
      'o3-mini',
    ]);
    // A list that cannot be filtered goes out as it came.
    const plain = new ModelListRewriter(undefined, (c) => c);
    plain.push(listBytes.subarray(0, 10), false);
    expect(plain.push(listBytes.subarray(10), true)!.equals(listBytes)).to.equal(true);
    expect(new ModelListRewriter(undefined, (c) => c).push(listBytes, true)).to.equal(undefined);
  });

  it('lets a list larger than the limit through unchanged, held bytes first', () => {
    const rewriter = new ModelListRewriter(undefined, () => []);
    const first = Buffer.alloc(MAX_MODEL_LIST_BYTES - 5, 0x20);
    expect(rewriter.push(first, false)!.length).to.equal(0);
    const second = Buffer.from('0123456789');
    expect(rewriter.push(second, false)!.equals(Buffer.concat([first, second]))).to.equal(true);
    expect(rewriter.push(Buffer.from('rest'), true)).to.equal(undefined);
  });

  it('filters GET /v1/models per caller with the authorization rules', async () => {
    const stage = new AuthorizeStep({
      default: 'allow',
      mode: 'enforce',
      rules: [
        {
          name: 'gpt-4o-for-ml',
          action: 'allow',
          mode: 'enforce',
          match: { models: ['gpt-4o'], claims: { groups: ['ml-team'] } },
        },
        {
          name: 'gpt-4o-others',
          action: 'deny',
          mode: 'enforce',
          match: { models: ['gpt-4o'], claims: {} },
        },
      ],
    });
    const run = async (groups: string[]) => {
      const ledger = new RecordingLedger();
      const a = admission({ method: 'GET', path: '/v1/models', identity: { ...IDENTITY, groups } });
      const ex = new MeteringExchange({
        ledger,
        modelPolicy: () => stage,
      });
      expect(ex.requestHeaders({}, metadataOf(a), true)).to.equal(undefined);
      const gz = zlib.gzipSync(listBytes);
      const mode = await headers(ex, 200, {
        ...JSON_TYPE,
        'content-encoding': 'gzip',
        'content-length': String(gz.length),
      });
      expect(mode).to.deep.equal({ modeOverride: { responseBody: 'buffered' } });
      const action = await ex.responseBody(gz, true);
      await ex.end('complete');
      expect(ledger.calls.map((c) => c.kind === 'release' && c.reason)).to.deep.equal([
        'not_metered',
      ]);
      return action;
    };
    expect(await run(['ml-team'])).to.equal(undefined); // everything allowed: untouched
    const action = (await run(['sales']))!;
    expect(ids(zlib.gunzipSync(action.body!))).to.deep.equal([
      'gpt-4o-mini',
      'o3-mini',
      'text-embedding-3-small',
    ]);
    expect(action.setHeaders).to.deep.equal({ 'content-length': String(action.body!.length) });
  });

  it('holds back an unsized list itself instead of asking Envoy to buffer it', async () => {
    const a = admission({ method: 'GET', path: '/v1/models' });
    const ex = new MeteringExchange({
      ledger: new RecordingLedger(),
      modelPolicy: () => ({ allowedModels: (_i, c) => onlyMini(c) }),
    });
    ex.requestHeaders({}, metadataOf(a), true);
    expect(await headers(ex, 200, JSON_TYPE)).to.deep.equal({
      modeOverride: { responseBody: 'streamed' },
      removeHeaders: ['content-length'],
    });
    expect(await ex.responseBody(listBytes.subarray(0, 30), false)).to.deep.equal({
      body: Buffer.alloc(0),
    });
    const last = (await ex.responseBody(listBytes.subarray(30), true))!;
    expect(ids(last.body!)).to.deep.equal(['gpt-4o-mini', 'o3-mini']);
    expect(last.setHeaders).to.equal(undefined);
  });

  it('asks for no body when there is no policy or the upstream failed', async () => {
    const a = admission({ method: 'GET', path: '/v1/models' });
    const ledger = new RecordingLedger();
    const ex = new MeteringExchange({ ledger });
    ex.requestHeaders({}, metadataOf(a), true);
    expect(await headers(ex, 200, JSON_TYPE)).to.equal(undefined);
    const failed = new MeteringExchange({
      ledger,
      modelPolicy: () => ({ allowedModels: () => [] }),
    });
    failed.requestHeaders({}, metadataOf(a), true);
    expect(await headers(failed, 503, JSON_TYPE)).to.equal(undefined);
  });
});
