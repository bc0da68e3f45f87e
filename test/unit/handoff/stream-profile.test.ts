import { expect } from 'chai';
import { streamProfile } from '../../../src/handoff/stream-profile.js';

describe('handoff: which ext_proc filter meters a request (streamProfile)', () => {
  const chat = '/v1/chat/completions';

  it('edits a stream whose usage is injected (its usage chunk must be removed again)', () => {
    expect(streamProfile(chat, { stream: true }, true, undefined)).to.equal('edit');
    expect(streamProfile('/v1/completions', { stream: true }, true, undefined)).to.equal('edit');
  });

  it('edits a stream whose output limit must be written, even when the client asked for usage', () => {
    const body = { stream: true, stream_options: { include_usage: true } };
    expect(streamProfile(chat, body, false, 100)).to.equal('edit');
    expect(streamProfile('/v1/responses', { stream: true }, false, 100)).to.equal('edit');
  });

  it('only observes a stream nothing edits: usage asked for by the client, or a Responses API stream', () => {
    const body = { stream: true, stream_options: { include_usage: true } };
    expect(streamProfile(chat, body, false, undefined)).to.equal('observe');
    expect(streamProfile('/v1/responses', { stream: true }, false, undefined)).to.equal('observe');
  });

  it('leaves every other request to the headers filter', () => {
    expect(streamProfile(chat, { stream: false }, false, undefined)).to.equal(undefined);
    expect(streamProfile(chat, { stream: 'true' }, false, undefined)).to.equal(undefined);
    expect(streamProfile(chat, undefined, false, 100)).to.equal(undefined);
    expect(streamProfile('/v1/embeddings', { stream: true }, false, undefined)).to.equal(undefined);
    expect(streamProfile('/v1/models', { stream: true }, false, undefined)).to.equal(undefined);
  });
});
