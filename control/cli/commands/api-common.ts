// Shared by the dicomctl client commands: where the API is, the token, and
// how HTTP failures become exit codes (1 failure, 2 usage, 3 not found,
// 4 conflict, 5 unauthorized, 6 unreachable or unavailable).
import { ApiClient, ApiClientError } from '../../api/client.js';
import { type ParsedArgs, str } from '../command.js';
import { CliError } from '../output.js';

export const clientOptions = { url: { type: 'string' }, token: { type: 'string' } } as const;
export const DEFAULT_URL = 'http://127.0.0.1:7311';

export function client(args: ParsedArgs): ApiClient {
  const url = str(args, 'url') ?? process.env.DICOM_URL ?? DEFAULT_URL;
  const token = str(args, 'token') ?? process.env.DICOM_TOKEN;
  try {
    new URL(url);
  } catch {
    throw new CliError(`--url must be a URL like ${DEFAULT_URL}, got "${url}"`, 2);
  }
  return new ApiClient(url, token);
}

export function exitCodeFor(status: number): number {
  if (status === 0 || status === 503) return 6;
  if (status === 404) return 3;
  if (status === 409) return 4;
  if (status === 401 || status === 403) return 5;
  if (status === 400 || status === 413) return 2;
  return 1;
}

export async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ApiClientError) throw new CliError(e.message, exitCodeFor(e.status));
    throw e;
  }
}

export function positiveId(args: ParsedArgs, what: string): number {
  const v = args.positionals[0];
  const n = Number(v);
  if (!v || !Number.isInteger(n) || n < 1) throw new CliError(`expected a ${what} id (a positive integer), got "${v ?? ''}"`, 2);
  return n;
}
