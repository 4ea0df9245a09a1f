// Shared TypeBox pieces; each route file defines its own resource schemas.
import { type Static, type TSchema, Type } from 'typebox';

export const ErrorBody = Type.Object(
  { statusCode: Type.Integer(), error: Type.String(), code: Type.Optional(Type.String()), message: Type.String() },
  { $id: 'Error' },
);
export const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2147483647, description: 'numeric id' }) });
export const Paging = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  offset: Type.Integer({ minimum: 0, default: 0 }),
});
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, { $ref: 'Error#' }]));
export const DateTime = Type.String({ format: 'date-time' });
/**
 * `T | null` as `type: [T, "null"]` rather than anyOf: fast-json-stringify
 * serialises it without running a validator per value (the hot list routes
 * return hundreds of these per response).
 */
export const Nullable = <T extends TSchema & { type?: unknown }>(t: T) =>
  typeof t.type === 'string' ? Type.Unsafe<Static<T> | null>({ ...t, type: [t.type, 'null'] }) : Type.Union([t, Type.Null()]);
/** A string enum as `{type: "string", enum: [...]}` (one check, readable in OpenAPI). */
export const StringEnum = <const T extends readonly string[]>(values: T, opts: Record<string, unknown> = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...opts });
