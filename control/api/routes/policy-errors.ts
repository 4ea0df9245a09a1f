// Validation messages that name what is wrong: an unknown field by its name, a bad value by its
// path ("body/params/threshold must be >= 0"), for the policy and pool routes.
import type { FastifySchemaValidationError } from 'fastify';

export function namingFormatter(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const e = errors[0];
  if (!e) return new Error(`${dataVar} is invalid`);
  const where = `${dataVar}${e.instancePath}`;
  const params = e.params as { additionalProperty?: string; allowedValues?: unknown[] };
  if (e.keyword === 'additionalProperties' && params.additionalProperty) return new Error(`${where} has an unknown field "${params.additionalProperty}"`);
  if (e.keyword === 'enum' && params.allowedValues) return new Error(`${where} must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`);
  return new Error(`${where} ${e.message ?? 'is invalid'}`);
}
