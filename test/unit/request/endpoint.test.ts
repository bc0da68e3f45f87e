import { expect } from 'chai';
import { classify, endpointForPath } from '../../../src/request/endpoint.js';

describe('request/endpoint catalogue', () => {
  it('names the four metered APIs exactly, in any letter case, with or without a query', () => {
    expect(endpointForPath('/v1/chat/completions')).to.equal('chat');
    expect(endpointForPath('/V1/Chat/Completions')).to.equal('chat');
    expect(endpointForPath('/v1/completions?x=1')).to.equal('completions');
    expect(endpointForPath('/v1/embeddings')).to.equal('embeddings');
    expect(endpointForPath('/v1/responses')).to.equal('responses');
    for (const path of [
      '/v1/responses/resp_123',
      '/v1/models',
      '/v1/files/chat/completions',
      '/openai/deployments/gpt4o/chat/completions',
      '/chat/completions',
    ]) {
      expect(endpointForPath(path), path).to.equal('other');
    }
  });

  it('classifies POSTs: metered, inspected, plain, and indirect model work', () => {
    const cls = (path: string) => classify('POST', path).class;
    expect(cls('/v1/chat/completions')).to.equal('metered');
    expect(cls('/v1/moderations')).to.equal('inspected');
    expect(cls('/v1/responses/input_tokens')).to.equal('inspected');
    for (const path of [
      '/v1/files',
      '/v1/uploads',
      '/v1/responses/resp_1/cancel',
      '/v1/batches/b_1/cancel',
      '/v1/chat/completions/chatcmpl-1',
      '/v1/conversations',
    ]) {
      expect(cls(path), path).to.equal('plain');
    }
    for (const path of [
      '/v1/batches',
      '/v1/fine_tuning/jobs',
      '/v1/realtime/client_secrets',
      '/v1/realtime/sessions',
      '/v1/audio/transcriptions',
      '/v1/audio/speech',
      '/v1/images/generations',
      '/v1/images/edits',
      '/v1/assistants',
      '/v1/threads/runs',
      '/v1/threads/thread_1/runs',
      '/v1/vector_stores',
      '/v1/evals',
      '/v1/responses/compact',
      '/v1/something-new',
      '/v2/chat/completions',
    ]) {
      expect(cls(path), path).to.equal('indirect');
    }
  });

  it('treats reads as plain, except Realtime, which runs models over any method', () => {
    expect(classify('GET', '/v1/models').class).to.equal('plain');
    expect(classify('DELETE', '/v1/files/file-1').class).to.equal('plain');
    expect(classify('GET', '/v1/chat/completions').class).to.equal('plain');
    expect(classify('GET', '/v1/realtime').class).to.equal('indirect');
    expect(classify('POST', '/v1/realtime/calls').class).to.equal('indirect');
  });

  it('treats PUT and PATCH as unknown work: OpenAI writes only with POST', () => {
    expect(classify('PUT', '/v1/chat/completions')).to.include({
      class: 'indirect',
      endpoint: 'other',
    });
    expect(classify('patch', '/v1/files')).to.include({ class: 'indirect' });
  });

  it('says which bodies are JSON whatever their content-type claims', () => {
    expect(classify('POST', '/v1/chat/completions').json).to.equal(true);
    expect(classify('POST', '/v1/batches').json).to.equal(true);
    expect(classify('POST', '/v1/audio/transcriptions').json).to.equal(false);
    expect(classify('POST', '/v1/files').json).to.equal(false);
  });
});
