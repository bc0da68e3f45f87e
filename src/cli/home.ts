/**
 * Where the command line keeps its files: `$TOLLGATE_HOME` (default `~/.tollgate`) holds the demo
 * issuer's keys and the login caches; the client configuration is `$TOLLGATE_CONFIG`, else
 * `$TOLLGATE_HOME/config.yaml` when TOLLGATE_HOME is set, else `~/.config/tollgate/config.yaml`.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function tollgateHome(): string {
  return process.env['TOLLGATE_HOME'] ?? join(homedir(), '.tollgate');
}

export function clientConfigPath(): string {
  const explicit = process.env['TOLLGATE_CONFIG'];
  if (explicit !== undefined && explicit !== '') return explicit;
  if (process.env['TOLLGATE_HOME'] !== undefined) return join(tollgateHome(), 'config.yaml');
  return join(process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config'), 'tollgate', 'config.yaml');
}
