/**
 * A table (or index) path, `schema.name` or `name`, with each part quoted for raw SQL. Internal:
 * the stores, the rate-limit ledger and the migrations that write raw SQL use it.
 */
export function quoteTablePath(path: string): string {
  return path
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}
