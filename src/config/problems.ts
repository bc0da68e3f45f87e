/** Configuration problems: every one is reported with its path and line before a file is refused. */

/** One problem in a configuration file. */
export interface ConfigProblem {
  /** Dotted path, e.g. `authentication[0].provider.issuer`. */
  readonly path: string;
  readonly message: string;
  /** 1-based line in the file when known. */
  readonly line?: number;
}

/** A configuration file that failed validation; carries every problem found. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  readonly file: string | undefined;
  constructor(problems: readonly ConfigProblem[], file?: string) {
    super(formatProblems(problems, file));
    this.name = 'ConfigError';
    this.problems = problems;
    this.file = file;
  }
}

export function formatProblems(problems: readonly ConfigProblem[], file?: string): string {
  const where = file ?? 'config';
  const lines = problems.map(
    (p) => `  ${where}${p.line !== undefined ? `:${p.line}` : ''}: ${p.path || '(root)'}: ${p.message}`,
  );
  return `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}
