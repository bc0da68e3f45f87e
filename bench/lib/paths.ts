import { join } from 'node:path';

/** The project root (bench/lib → ../..). */
export const ROOT = join(import.meta.dirname, '..', '..');
export const BENCH_DIR = join(ROOT, 'bench');
