// The shape every dicomctl command group implements: one module per group under commands/.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './output.js';

export interface Command {
  /** e.g. "lab up" */
  name: string;
  summary: string;
  usage: string;
  options?: NonNullable<ParseArgsConfig['options']>;
  run(args: ParsedArgs): Promise<void>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parse(cmd: Command, argv: string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...cmd.options },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (e) {
    throw new CliError(`${(e as Error).message}\nusage: dicomctl ${cmd.usage}`, 2);
  }
}

export function str(args: ParsedArgs, key: string): string | undefined {
  const v = args.values[key];
  return typeof v === 'string' ? v : undefined;
}

export function int(args: ParsedArgs, key: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = str(args, key);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CliError(`--${key} must be an integer between ${min} and ${max}, got "${v}"`, 2);
  }
  return n;
}
