/**
 * A tunnel's traffic over the last 15 minutes for the dashboard's plots: events (requests, or a
 * TCP tunnel's visitors) and bytes in BUCKETS buckets of BUCKET_MS each, the newest last. Bytes
 * are counted when their request's response, or their connection, ends. Time is given by the
 * caller (`now`, epoch ms), so tests run it on their clock.
 */
export const SERIES_BUCKET_MS = 10_000
export const SERIES_BUCKETS = 90

export interface Series {
  readonly requests: ReadonlyArray<number>
  readonly bytes: ReadonlyArray<number>
  readonly bucketSeconds: number
}

export interface SeriesCounter {
  readonly add: (now: number, events: number, bytes: number) => void
  readonly snapshot: (now: number) => Series
}

export const makeSeries = (): SeriesCounter => {
  const events = new Array<number>(SERIES_BUCKETS).fill(0)
  const bytes = new Array<number>(SERIES_BUCKETS).fill(0)
  // The bucket the arrays' last slot stands for.
  let newest: number | undefined

  const advance = (now: number) => {
    const bucket = Math.floor(now / SERIES_BUCKET_MS)
    newest ??= bucket
    const steps = Math.min(SERIES_BUCKETS, bucket - newest)
    for (let step = 0; step < steps; step++) {
      events.shift(), events.push(0)
      bytes.shift(), bytes.push(0)
    }
    newest = Math.max(newest, bucket)
  }

  return {
    add: (now, eventCount, byteCount) => {
      advance(now)
      events[SERIES_BUCKETS - 1]! += eventCount
      bytes[SERIES_BUCKETS - 1]! += byteCount
    },
    snapshot: (now) => {
      advance(now)
      return { requests: [...events], bytes: [...bytes], bucketSeconds: SERIES_BUCKET_MS / 1000 }
    }
  }
}
