/** What the coordinator and the workers share: the queue's name and how they connect to Redis. */
import type { RedisOptions } from 'bullmq';
import type { QueueAddress } from './queue-url.ts';

/** Name of the BullMQ queue every stage's jobs go to (one queue; the job's name is its type). */
export const QUEUE_NAME = 'distill-kit-jobs';

/**
 * ioredis options for `addr`. A worker (`blocking`) retries its commands for ever while Redis is
 * away (BullMQ requires it); the coordinator's commands fail at once while disconnected, so it can
 * tell how long Redis has been gone.
 */
export function redisOptions(addr: QueueAddress, blocking: boolean): RedisOptions {
  return {
    host: addr.host,
    port: addr.port,
    db: addr.db,
    ...(addr.username !== undefined ? { username: addr.username } : {}),
    ...(addr.password !== undefined ? { password: addr.password } : {}),
    maxRetriesPerRequest: blocking ? null : 1,
    enableOfflineQueue: blocking,
    connectTimeout: 5000,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}
