/**
 * The layer check (`npm run check:layers`, part of `npm test`): no import cycle, and imports
 * only point down the layers of docs/architecture.md. A folder (or top-level file) of src/
 * may import its own files and those of any layer listed before it, never one after it.
 */
const LAYERS = [
  'domain', // plain nouns: request, identity, decision, denial, reservation, reason codes
  'config', // the frozen, validated configuration
  'telemetry', // logs, metrics, traces
  'store', // counters: memory and Redis
  'identity', // token verification and claims
  'request', // the canonical request: path, endpoint catalogue, body, credentials
  'policy', // authorization rules and globs
  'metering', // bytes in, usage out
  'handoff', // what the Check hands to the response side
  'limits', // rate limits and the one admission call
  'budgets', // token budgets: plans, fit, ledger, the /budget view
  'check', // the Check (ext_authz) as a table of steps
  'response', // the response side (ext_proc) as named phases
  'edge', // Envoy's protos and shapes: the only code that knows them
  'server', // the gRPC and HTTP servers
  'portal', // the self-service portal (its own HTTP listener)
  'app.ts', // the composition root
  'stack', // real Envoy + the sidecar on one machine
  'dev', // the development issuer and upstream
  'cli', // the command line
  'main.ts', // the executable
];

const path = (layer) => (layer.endsWith('.ts') ? `^src/${layer.replace('.', '\\.')}$` : `^src/${layer}/`);

const upward = LAYERS.flatMap((layer, i) => {
  const higher = LAYERS.slice(i + 1);
  if (higher.length === 0) return [];
  return [
    {
      name: `${layer}-imports-up`,
      comment: `${layer} may import only layers listed before it in .dependency-cruiser.cjs`,
      severity: 'error',
      from: { path: path(layer) },
      to: { path: higher.map(path) },
    },
  ];
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import cycle: split the concept or move it down a layer',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-in-a-layer',
      comment: 'every file of src/ belongs to a layer of .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/', pathNot: LAYERS.map(path) },
      to: {},
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules|test|bench|scripts)/' },
  },
};
