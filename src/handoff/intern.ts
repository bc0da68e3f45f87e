/**
 * One shared copy of strings that repeat across requests (method, path, model). Every request
 * decodes its own copies; an admission keeps them until ext_proc takes it, or for minutes when
 * no ext_proc stream comes (bench/OPTIMISATIONS.md). Bounded: past `MAX_VALUES` distinct
 * values (clients choose paths and models), new ones are returned as they are.
 */
const MAX_VALUES = 1024;
const values = new Map<string, string>();

export function intern(value: string): string {
  const shared = values.get(value);
  if (shared !== undefined) return shared;
  if (values.size < MAX_VALUES) values.set(value, value);
  return value;
}
