// A response cache that Postgres keeps honest: a trigger notifies a channel
// after every committed change to what the cached pages show (migration
// build_list_notify), and this process LISTENs on its own connection and
// drops everything it holds on each notification. While that connection is
// down (an outage, a restart of Postgres), nothing is served from the cache,
// so reads go to the database and fail with 503 like every other route;
// on reconnect the cache starts empty, as notifications may have been missed.
import pg from 'pg';
import { poolConfig } from '../db/adapter.js';

const MAX_ENTRIES = 512;

export class NotifiedCache {
  private entries = new Map<string, string>();
  /** bumped on every invalidation: a read that straddles one must not fill the cache */
  private generation = 0;
  private client: pg.Client | undefined;
  private listening = false;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Connects and listens; a failure only leaves the cache off until a retry succeeds. */
  async start(): Promise<void> {
    if (this.stopped || this.client) return;
    const c = new pg.Client({ ...(poolConfig(this.url, { Client: undefined }) as pg.ClientConfig), keepAlive: true, application_name: 'dicom-list-cache' });
    this.client = c;
    const lost = (why: string) => {
      if (this.client !== c) return;
      this.client = undefined;
      this.listening = false;
      this.invalidate();
      c.removeAllListeners();
      c.on('error', () => {});
      void c.end().catch(() => {});
      if (!this.stopped) {
        this.log(`list cache off (${why}); retrying`);
        this.retry = setTimeout(() => void this.start(), 1000);
        this.retry.unref();
      }
    };
    c.on('notification', () => this.invalidate());
    c.on('error', (e) => lost(e.message));
    c.on('end', () => lost('connection closed'));
    try {
      await c.connect();
      await c.query(`LISTEN ${c.escapeIdentifier(this.channel)}`);
      if (this.client !== c) return;
      this.invalidate();
      this.listening = true;
    } catch (e) {
      lost((e as Error).message);
    }
  }

  invalidate(): void {
    this.generation++;
    this.entries.clear();
  }

  /** The cached text for key, or load() it (and keep it when nothing changed meanwhile). */
  async get(key: string, load: () => Promise<string>): Promise<string> {
    if (this.listening) {
      const hit = this.entries.get(key);
      if (hit !== undefined) return hit;
    }
    const gen = this.generation;
    const text = await load();
    if (this.listening && gen === this.generation) {
      if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
      this.entries.set(key, text);
    }
    return text;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    this.listening = false;
    this.invalidate();
    if (c) {
      c.removeAllListeners();
      c.on('error', () => {});
      await c.end().catch(() => {});
    }
  }
}
