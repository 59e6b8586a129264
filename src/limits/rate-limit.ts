/**
 * A token bucket per API key: BURST requests at once, then one every REFILL. A key that empties
 * its bucket is told to come back when the next token is due (429 with Retry-After).
 *
 * Buckets are kept only for keys that passed authentication, and there are as many of those as
 * lines in the keys file, so the table cannot grow without bound.
 */
import { Clock, Duration, Effect } from "effect"

export const BURST = 30
export const REFILL = Duration.seconds(1)

interface Bucket {
  tokens: number
  updatedAt: number
}

export interface RateLimit {
  /** Takes a token for `key`: 0 if allowed, else the seconds to wait. */
  readonly take: (key: string) => Effect.Effect<number>
}

export const makeRateLimit = (burst = BURST, refill = REFILL): RateLimit => {
  const buckets = new Map<string, Bucket>()
  const refillMs = Duration.toMillis(refill)
  return {
    take: (key) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const bucket = buckets.get(key) ?? { tokens: burst, updatedAt: now }
        bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.updatedAt) / refillMs)
        bucket.updatedAt = now
        buckets.set(key, bucket)
        if (bucket.tokens >= 1) {
          bucket.tokens -= 1
          return 0
        }
        return Math.max(1, Math.ceil(((1 - bucket.tokens) * refillMs) / 1000))
      })
  }
}
