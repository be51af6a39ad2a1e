/**
 * The targets of an RFC 8288 `Link` header by relation: `<https://…?page=2>; rel="next", …`.
 * Unparseable parts are skipped; a relation named twice keeps its first target.
 */
export function parseLinkHeader(value: string | undefined): Map<string, string> {
  const links = new Map<string, string>();
  if (!value) return links;
  for (const part of value.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*((?:;[^;]*)*)$/.exec(part);
    if (!match) continue;
    const rel = /;\s*rel\s*=\s*"?([^";]+)"?/i.exec(match[2])?.[1];
    if (!rel) continue;
    for (const name of rel.trim().toLowerCase().split(/\s+/)) {
      if (!links.has(name)) links.set(name, match[1]);
    }
  }
  return links;
}
