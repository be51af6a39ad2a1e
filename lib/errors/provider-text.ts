/**
 * Whether a text Procore sent (an OAuth `error_description`, an API error message) may be shown in
 * the package's errors: short, and without a run of characters long enough to be a token.
 */
export function mayShowProviderText(text: string): boolean {
  return text.length <= 200 && !/[A-Za-z0-9_-]{24,}/.test(text);
}
