/**
 * Argument parsing and dispatch. Each command returns its exit code, or undefined when it keeps
 * running until a signal (serve, stack, demo).
 */
import { parseArgs } from 'node:util';
import { checkConfig } from './check-config.js';

const USAGE = `usage: tollgate <command> [options]

commands:
  serve --config FILE                          run the gRPC sidecar (ext_authz, ext_proc, health) and /metrics
  check-config FILE                            validate a configuration file; exit 1 when invalid
  stack --config FILE --upstream URL [--port N] run Envoy and the sidecar together on this machine
  demo [--port N]                              the whole thing on embedded defaults (dev issuer + dev upstream)
  login [--issuer URL] [--client-id ID] [--scope S] [--resource URI] [--profile NAME] [--browser | --device]
                                               sign in with your IdP (device code, or browser + PKCE); caches tokens
  token [--profile NAME]                       print a fresh token of the current login (refreshed when needed)
  token --demo [--sub S] [--email E] [--groups a,b] [--tenant T] [--expires-in 1h]
                                               mint a token from the demo issuer (development only)
  logout [--profile NAME]                      revoke the login at the IdP (when it offers revocation) and delete it
  whoami [--url BASE] [--profile NAME] [--json]
                                               ask the gateway who you are: claims, models, rules, limits, budgets
  budget [--tenant T] [--group G] [--user U] [--url URL] [--json]
                                               used and remaining tokens of budgets (from a running sidecar)
  explain --config FILE (--claims JSON | --token JWT) [--method M] [--path P] [--model M]
          [--store redis://... | --url URL] [--json]
                                               how the live Check decides one request, and why
                                               (counters from Redis, or from a running sidecar)
  test --config FILE CASES.yaml [--format text|tap|junit]
                                               policy cases: exit 1 when any decision differs
  diff OLD NEW (--cases CASES.yaml | --audit FILE) [--json]
                                               decisions that change between two configurations; exit 1 when any
  shadow [--url URL] [--json]                  would-be denials of shadow rules, per rule (from a running sidecar)
`;

export class UsageError extends Error {}

/** Parses string-valued options only (every flag of ours takes a value). */
function options<K extends string>(args: string[], spec: Record<K, { type: 'string'; short?: string }>) {
  try {
    const parsed = parseArgs({ args, options: spec, allowPositionals: true, strict: true });
    return { values: parsed.values as Partial<Record<K, string>>, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

function port(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be 0..65535, got ${value}`);
  return n;
}

export async function main(argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve': {
        const { values } = options(rest, { config: { type: 'string', short: 'c' } });
        if (!values.config) throw new UsageError('serve needs --config FILE');
        const { serve } = await import('./serve.js');
        return await serve(values.config);
      }
      case 'check-config': {
        const { positionals, values } = options(rest, { config: { type: 'string', short: 'c' } });
        const file = positionals[0] ?? values.config;
        if (!file) throw new UsageError('check-config needs FILE');
        return await checkConfig(file, process.stdout, process.stderr);
      }
      case 'stack': {
        const { values } = options(rest, {
          config: { type: 'string', short: 'c' },
          upstream: { type: 'string' },
          port: { type: 'string', short: 'p' },
        });
        if (!values.config) throw new UsageError('stack needs --config FILE');
        if (!values.upstream) throw new UsageError('stack needs --upstream URL');
        const { stackCommand } = await import('./stack.js');
        return await stackCommand(values.config, values.upstream, port(values.port, 10000));
      }
      case 'demo': {
        const { values } = options(rest, { port: { type: 'string', short: 'p' } });
        const { demo } = await import('./demo.js');
        return await demo(port(values.port, 10000));
      }
      case 'token': {
        const { tokenCommand } = await import('./token.js');
        return await tokenCommand(rest, process.stdout, process.stderr);
      }
      case 'login': {
        const { loginCommand } = await import('./login/commands.js');
        return await loginCommand(rest, process.stdout, process.stderr);
      }
      case 'logout': {
        const { logoutCommand } = await import('./login/commands.js');
        return await logoutCommand(rest, process.stdout, process.stderr);
      }
      case 'whoami': {
        const { whoamiCommand } = await import('./whoami.js');
        return await whoamiCommand(rest, process.stdout, process.stderr);
      }
      case 'budget': {
        const { budgetCommand } = await import('./budget.js');
        return await budgetCommand(rest, process.stdout, process.stderr);
      }
      case 'explain': {
        const { explainCommand } = await import('./explain-command.js');
        return await explainCommand(rest, process.stdout, process.stderr);
      }
      case 'test': {
        const { testCommand } = await import('./policy-test.js');
        return await testCommand(rest, process.stdout, process.stderr);
      }
      case 'diff': {
        const { diffCommand } = await import('./policy-diff.js');
        return await diffCommand(rest, process.stdout, process.stderr);
      }
      case 'shadow': {
        const { shadowCommand } = await import('./shadow.js');
        return await shadowCommand(rest, process.stdout, process.stderr);
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command: ${command}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tollgate: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}
