/** Which OpenAI API a request path addresses; decides how bodies are read and metered. */
export type Endpoint = 'chat' | 'completions' | 'embeddings' | 'responses' | 'other';

/**
 * Classifies by the path's ending, so `/v1/chat/completions`, a proxy prefix
 * (`/openai/v1/...`) and Azure deployments (`/openai/deployments/x/chat/completions?api-version=…`)
 * all match. Sub-resources such as `/v1/responses/{id}` or `/v1/chat/completions/{id}` are
 * `other`: they generate no tokens.
 */
export function endpointForPath(path: string): Endpoint {
  let p = path;
  const q = p.search(/[?#]/);
  if (q >= 0) p = p.slice(0, q);
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  if (p.endsWith('/chat/completions')) return 'chat';
  if (p.endsWith('/completions')) return 'completions';
  if (p.endsWith('/embeddings')) return 'embeddings';
  if (p.endsWith('/responses')) return 'responses';
  return 'other';
}
