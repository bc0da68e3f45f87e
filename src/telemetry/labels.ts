/**
 * Label hygiene for metrics: free-form values (tenants, models, users) are capped so a flood of
 * distinct values cannot blow up the series count of the Prometheus endpoint.
 */
export { DEFAULT_MAX_LABEL_VALUES } from '../config/schema.js';

/**
 * Longest free-form label value kept, in characters: values come from requests (a model name)
 * and tokens, and every kept value stays in memory and in each scrape for the process's life.
 */
export const MAX_LABEL_CHARS = 128;

/**
 * Caps the number of distinct values a free-form label can take, and their length; the rest
 * become `other`.
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  private cap: number;
  constructor(cap: number) {
    this.cap = cap;
  }
  value(v: string | undefined): string {
    if (v === undefined || v === '') return 'none';
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.cap || v.length > MAX_LABEL_CHARS) return 'other';
    this.seen.add(v);
    return v;
  }
  /**
   * A new cap (a reload changed `metrics.maxLabelValues`). Values already exported keep their
   * series; lowering the cap only stops new ones from being admitted.
   */
  resize(cap: number): void {
    this.cap = cap;
  }
}
