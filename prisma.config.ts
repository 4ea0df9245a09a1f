// Prisma CLI configuration: the wasm schema engine through the pg driver
// adapter (STACK.md), so generate and migrate work offline.
import { defineConfig } from 'prisma/config';
import { adapterFactory } from './control/db/adapter.js';

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  async adapter() {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error('DATABASE_URL is not set (dicomctl db migrate sets it for the embedded database)');
    return adapterFactory(url);
  },
});
