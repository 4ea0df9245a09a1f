// dicomctl token create|list|revoke: API tokens, straight in the job database
// (this is how the first token exists). Only the sha256 is stored.
import { type Command } from '../command.js';
import { CliError, note, printJson, printTable } from '../output.js';
import { createToken } from '../../api/auth.js';
import { openDb } from '../../db/index.js';

async function withDb<T>(fn: (db: Awaited<ReturnType<typeof openDb>>) => Promise<T>): Promise<T> {
  const db = await openDb({ log: note });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const createCmd: Command = {
  name: 'token create',
  summary: 'create an API token and print it once',
  usage: 'token create NAME [--json]',
  async run(args) {
    const name = args.positionals[0];
    if (!name || !/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) throw new CliError('token create needs a NAME of 1-64 letters, digits, _ . @ -', 2);
    const t = await withDb(async (db) => {
      if (await db.prisma.apiToken.findUnique({ where: { name } })) throw new CliError(`a token named "${name}" exists; revoke it first`, 4);
      return createToken(db.prisma, name);
    });
    if (args.values.json) printJson(t);
    else process.stdout.write(`${t.token}\n`);
    if (!args.values.json) process.stderr.write(`  token "${name}" created; it is shown only now. Use: export DICOM_TOKEN=${t.token}\n`);
  },
};

const listCmd: Command = {
  name: 'token list',
  summary: 'list API tokens (names and last use; never the tokens)',
  usage: 'token list [--json]',
  async run(args) {
    const rows = await withDb((db) => db.prisma.apiToken.findMany({ orderBy: { id: 'asc' }, select: { id: true, name: true, createdAt: true, lastUsedAt: true } }));
    if (args.values.json) return printJson(rows);
    if (rows.length === 0) return void process.stdout.write('no tokens\n');
    printTable(rows.map((r) => ({ id: r.id, name: r.name, created: r.createdAt.toISOString(), lastUsed: r.lastUsedAt?.toISOString() ?? '-' })));
  },
};

const revokeCmd: Command = {
  name: 'token revoke',
  summary: 'delete an API token by name',
  usage: 'token revoke NAME',
  async run(args) {
    const name = args.positionals[0];
    if (!name) throw new CliError('token revoke needs a NAME', 2);
    const n = await withDb((db) => db.prisma.apiToken.deleteMany({ where: { name } }));
    if (n.count === 0) throw new CliError(`no token named "${name}"`, 3);
    process.stdout.write(`revoked ${name}\n`);
  },
};

export const commands: Command[] = [createCmd, listCmd, revokeCmd];
