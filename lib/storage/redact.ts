import { inspect, type InspectOptions } from 'node:util';
import type { ProcoreTokenRecord } from './procore-token.store.js';

/** What a logged or serialised entity or record shows instead of a token or verifier. */
export const REDACTED = '[redacted]';

/**
 * A shallow copy of `value`'s own enumerable fields with each of `keys` that holds a value
 * (`null` and `undefined` stay as they are: "no token" is not a secret) replaced by
 * {@link REDACTED}. What `toJSON()` returns.
 */
export function redactedCopy<T extends object>(
  value: T,
  keys: readonly (keyof T & string)[],
): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const key of keys) {
    if (copy[key] !== null && copy[key] !== undefined) copy[key] = REDACTED;
  }
  return copy;
}

/**
 * What `util.inspect` (so `console.log`, Nest's logger for non-plain objects, a REPL, a test
 * failure) prints for `value`: its fields with `keys` redacted, prefixed by `name` when given.
 */
export function inspectRedacted<T extends object>(
  value: T,
  keys: readonly (keyof T & string)[],
  depth: number | null,
  options: InspectOptions,
  name?: string,
): string {
  // `depth` is what is left of `options.depth` at this level of the printed object.
  const printed = inspect(redactedCopy(value, keys), { ...options, depth });
  return name ? `${name} ${printed}` : printed;
}

/** One prototype per list of keys; see {@link redactWhenPrinted}. */
const redactingPrototypes = new Map<string, object>();

function redactingPrototype(keys: readonly string[]): object {
  const id = keys.join('\u0000');
  let prototype = redactingPrototypes.get(id);
  if (!prototype) {
    // Non-enumerable (defineProperty's default): invisible to spreads, `for...in` and Object.keys.
    prototype = Object.create(Object.prototype, {
      toJSON: {
        value(this: Record<string, unknown>) {
          return redactedCopy(this, keys);
        },
      },
      [inspect.custom]: {
        value(this: Record<string, unknown>, depth: number | null, options: InspectOptions) {
          return inspectRedacted(this, keys, depth, options);
        },
      },
    }) as object;
    redactingPrototypes.set(id, prototype);
  }
  return prototype;
}

/**
 * A copy of the plain record `record` that prints without its secrets: `toJSON()` and
 * `[util.inspect.custom]` show `keys` as {@link REDACTED}. Both live, non-enumerable, on the
 * copy's prototype rather than on the copy itself, because Nest's `ConsoleLogger` merges plain
 * objects passed after the message into one with `Object.assign` (which would drop own
 * non-enumerable properties and print the rest); a record with its own prototype is printed with
 * `util.inspect` instead. Reading the fields, spreading, `Object.keys`, `for...in` and Jest's
 * `toEqual` / `toStrictEqual` are unaffected. A spread copy is a plain object again and prints
 * everything, so redact it again if it is logged.
 */
export function redactWhenPrinted<T extends object>(
  record: T,
  keys: readonly (keyof T & string)[],
): T {
  return Object.assign(Object.create(redactingPrototype(keys)) as T, record);
}

/** The fields of a {@link ProcoreTokenRecord} that hold (encrypted) tokens. */
const TOKEN_RECORD_SECRETS = ['accessToken', 'refreshToken'] as const;

/** {@link redactWhenPrinted} for a stored connection: its token values print as `'[redacted]'`. */
export function redactTokenRecord(record: ProcoreTokenRecord): ProcoreTokenRecord {
  return redactWhenPrinted(record, TOKEN_RECORD_SECRETS);
}
