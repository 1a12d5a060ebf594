/**
 * The `--queue` address: `redis://[user:pass@]HOST:PORT[/db]`, parsed into the connection options
 * of BullMQ's Redis client (ioredis), and shown back with the password hidden.
 */
import { ConfigError } from '../util/errors.ts';

/** A parsed queue address. */
export interface QueueAddress {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** The address with the password replaced by `***`, for messages and logs. */
  display: string;
}

/**
 * Parses `redis://[user:pass@]HOST:PORT[/db]`.
 * @param where what the value came from, for the message (e.g. `--queue`, `queue: in x.yaml`).
 * @throws ConfigError naming the value, what is wrong and the expected form.
 */
export function parseQueueUrl(text: string, where = '--queue'): QueueAddress {
  const form = 'expected redis://[user:pass@]HOST:PORT[/db], e.g. redis://127.0.0.1:6379/0';
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ConfigError(`${where}: '${text}' is not a URL; ${form}`);
  }
  if (u.protocol !== 'redis:') throw new ConfigError(`${where}: '${text}' uses '${u.protocol}'; only redis:// is supported (${form})`);
  if (!u.hostname) throw new ConfigError(`${where}: '${text}' has no host; ${form}`);
  if (!u.port) throw new ConfigError(`${where}: '${text}' has no port; ${form}`);
  const port = Number(u.port);
  const dbText = u.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) throw new ConfigError(`${where}: '${text}': the database '/${dbText}' must be a number (0-15 on a default Redis); ${form}`);
  if (u.search || u.hash) throw new ConfigError(`${where}: '${text}' has a query or fragment, which is not used; ${form}`);
  const db = dbText === '' ? 0 : Number(dbText);
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const auth = username || password ? `${username ?? ''}${password ? ':***' : ''}@` : '';
  return {
    host,
    port,
    db,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    display: `redis://${auth}${u.host}/${db}`,
  };
}
