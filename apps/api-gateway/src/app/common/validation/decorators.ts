import { applyDecorators } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { IsInt, IsString, Length, Matches, Max, Min, type ValidationOptions } from 'class-validator';

/** Largest id or count the API accepts unless a field says otherwise (fits a signed 32-bit column). */
export const MAX_INT_ID = 2_147_483_647;

const DIGITS = /^(0|[1-9][0-9]{0,9})$/;

/**
 * A whole number from JSON or a query string, strictly: JSON numbers that are
 * integers, or query strings of plain digits. `true`, `""`, `1e308`, `1.5`,
 * `0x10` and 99999999999999999999999 stay what they are and fail with a 400
 * (class-transformer's `@Type(() => Number)` read `true` as 1 and `""` as 0).
 */
export function StrictInt(opts: { min?: number; max?: number } = {}) {
  const min = opts.min ?? 0;
  const max = opts.max ?? MAX_INT_ID;
  return applyDecorators(
    Transform(({ value }: { value: unknown }) => (typeof value === 'string' && DIGITS.test(value) ? Number(value) : value)),
    IsInt({ message: ({ property }) => `${property} must be a whole number from ${min} to ${max}` }),
    Min(min, { message: ({ property }) => `${property} must be a whole number from ${min} to ${max}` }),
    Max(max, { message: ({ property }) => `${property} must be a whole number from ${min} to ${max}` }),
  );
}

/**
 * Control characters (NUL, newline, escape, ...), bidirectional overrides and
 * isolates, and line/paragraph separators: they hide or reorder what a name
 * shows in logs, tables and the console.
 */
// eslint-disable-next-line no-control-regex
export const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u;

/** True when a string holds a character that `SafeName` refuses. */
export function hasUnsafeChars(s: string): boolean {
  return UNSAFE_NAME_CHARS.test(s);
}

/** A display name: 1..max characters, none of them control or bidi characters. */
export function SafeName(max = 255, opts: Pick<ValidationOptions, 'each'> = {}) {
  return applyDecorators(
    IsString(opts),
    Length(1, max, opts),
    Matches(new RegExp(`^[^${UNSAFE_NAME_CHARS.source.slice(1, -1)}]*$`, 'u'), {
      ...opts,
      message: ({ property }) => `${property} must not contain control characters or bidirectional-override characters`,
    }),
  );
}
