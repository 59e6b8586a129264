/**
 * Certificates for the HTTPS front from an ACME directory (Let's Encrypt by default), through
 * the `acme-client` library: one certificate per name, asked for when a visitor's TLS handshake
 * first names it (SNI), answered by HTTP-01 on the plain front, kept under `--state-dir`
 * (acme-state.ts) and renewed well before it expires.
 *
 * What may be asked for is guarded, because SNI is whatever a visitor types:
 * - only eligible names (the front's domain and NAME.DOMAIN for a tunnel that exists; tunnels
 *   are made by API key holders), so random names from a flood never reach the directory;
 * - at most `weeklyLimit` certificates for new names in any 7 days, remembered across restarts
 *   (Let's Encrypt allows 50 per registered domain a week; renewals are not counted, there as here);
 * - one order per name at a time; a name that failed waits before it is tried again (10 min,
 *   doubling to 6 h), as a directory's failed-validation limit asks;
 * - no order lasts more than ORDER_TIMEOUT.
 */
import * as fs from "node:fs"
import * as https from "node:https"
import * as tls from "node:tls"
import * as acme from "acme-client"
import { Clock, Deferred, Duration, Effect, Option, type Scope } from "effect"
import { AcmeError, StateDirError } from "../errors.js"
import { describeCertificate, describeLine } from "../net/tls.js"
import { makeAcmeState, type StoredCertificate } from "./acme-state.js"

export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"

/** Certificates for new names allowed in 7 days by default (under Let's Encrypt's 50). */
export const DEFAULT_WEEKLY_LIMIT = 40

export interface AcmeConfig {
  readonly email: string
  readonly directoryUrl: string
  /** A private directory's CA (`--acme-ca`, e.g. step-ca or pebble); the system's by default. */
  readonly caFile: Option.Option<string>
  readonly stateDir: string
  readonly weeklyLimit: number
}

export interface AcmeCertificates {
  /** The certificate for `name`, getting it first if need be; None if the name is not eligible or none can be had. */
  readonly contextFor: (name: string) => Effect.Effect<Option.Option<tls.SecureContext>>
  /** The key authorization for an HTTP-01 token the directory is validating, if it is ours. */
  readonly challengeResponse: (token: string) => Option.Option<string>
  /** Renews every certificate held whose renewal is due and whose name is still eligible. */
  readonly renewDue: Effect.Effect<void>
}

const ORDER_TIMEOUT = Duration.minutes(2)
/**
 * How long a handshake waits for its name's first certificate (an order takes a few seconds;
 * acme-client's own retries of a directory that is down take over a minute). The order goes on
 * without it, for the next visitor.
 */
const HANDSHAKE_WAIT = Duration.seconds(20)
const WEEK_MS = 7 * 24 * 3600_000
const FIRST_RETRY_MS = 10 * 60_000
const LAST_RETRY_MS = 6 * 3600_000
/** How often every held certificate is looked at for renewal. */
const RENEWAL_INTERVAL = Duration.hours(12)

/**
 * When a certificate should be renewed: once a third of its life is left, but at least 30 days
 * before it ends (Let's Encrypt's 90-day certificates renew at day 60, as certbot does).
 */
export const renewalTime = (validFrom: Date, validTo: Date): number => {
  const lifetime = validTo.getTime() - validFrom.getTime()
  return validTo.getTime() - Math.min(lifetime / 3, 30 * 24 * 3600_000)
}

interface Held {
  readonly context: tls.SecureContext
  readonly validFrom: Date
  readonly validTo: Date
}

const hold = (stored: StoredCertificate): Held => {
  const info = describeCertificate(stored.cert)
  return {
    context: tls.createSecureContext({ cert: stored.cert, key: stored.key }),
    validFrom: info.validFrom,
    validTo: info.validTo
  }
}

export const makeAcmeCertificates = (
  config: AcmeConfig,
  isEligible: (name: string) => boolean
): Effect.Effect<AcmeCertificates, StateDirError | AcmeError, Scope.Scope> =>
  Effect.gen(function*() {
    const state = yield* makeAcmeState(config.stateDir, config.directoryUrl)
    if (Option.isSome(config.caFile)) {
      const caFile = config.caFile.value
      const ca = yield* Effect.try({
        try: () => [fs.readFileSync(caFile, "utf8")],
        catch: (error) => new StateDirError({ path: caFile, reason: (error as NodeJS.ErrnoException).code ?? String(error) })
      })
      // acme-client talks through one shared axios instance: this process has one directory.
      acme.axios.defaults.httpsAgent = new https.Agent({ ca })
    }
    const accountKey = yield* Option.match(yield* state.accountKey, {
      onSome: Effect.succeed,
      onNone: () =>
        Effect.promise(() => acme.crypto.createPrivateEcdsaKey()).pipe(
          Effect.map((key) => key.toString()),
          Effect.tap((pem) => state.saveAccountKey(pem))
        )
    })
    const client = new acme.Client({ directoryUrl: config.directoryUrl, accountKey })
    const challenges = new Map<string, string>()
    const held = new Map<string, Held>()
    const ordering = new Map<string, Deferred.Deferred<Option.Option<Held>>>()
    const failures = new Map<string, { readonly until: number; readonly waitMs: number }>()
    let newOrders = [...(yield* state.newOrders)]

    /** Asks the directory for `name`'s certificate and keeps it. */
    const order = (name: string) =>
      Effect.gen(function*() {
        const [key, csr] = yield* Effect.promise(() => acme.crypto.createCsr({ commonName: name, altNames: [name] }))
        const cert = yield* Effect.tryPromise({
          try: () =>
            client.auto({
              csr,
              email: config.email,
              termsOfServiceAgreed: true,
              challengePriority: ["http-01"],
              // The directory's own check is the one that counts; ours would need this host to
              // reach itself by its public name, which NAT and firewalls often forbid.
              skipChallengeVerification: true,
              challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
                challenges.set(challenge.token, keyAuthorization)
              },
              challengeRemoveFn: async (_authz, challenge) => {
                challenges.delete(challenge.token)
              }
            }),
          catch: (error) => new AcmeError({ name, reason: (error as Error).message })
        }).pipe(Effect.timeoutFail({ duration: ORDER_TIMEOUT, onTimeout: () => new AcmeError({ name, reason: `the directory took over ${Duration.format(ORDER_TIMEOUT)}` }) }))
        const stored = { cert, key: key.toString() }
        yield* state.saveCertificate(name, stored)
        const next = hold(stored)
        held.set(name, next)
        yield* Effect.logInfo(`ACME ${describeLine(describeCertificate(cert))}`)
        return next
      })

    /** One order per name at a time; a new name must pass the weekly guard and its backoff. */
    const obtain = (name: string, renewal: boolean): Effect.Effect<Option.Option<Held>> =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<Option.Option<Held>>()
        const running = ordering.get(name)
        if (running !== undefined) return yield* Deferred.await(running)
        ordering.set(name, done)
        // Whatever ends this order (interruption at shutdown included), those waiting are told.
        const settle = (result: Option.Option<Held>) =>
          Effect.zipRight(Deferred.succeed(done, result), Effect.sync(() => ordering.delete(name)))
        return yield* Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const failed = failures.get(name)
          if (failed !== undefined && now < failed.until) return Option.none<Held>()
          if (!renewal) {
            newOrders = newOrders.filter((time) => time > now - WEEK_MS)
            if (newOrders.length >= config.weeklyLimit) {
              yield* Effect.logWarning(`no certificate asked for ${name}: ${config.weeklyLimit} new names in 7 days already (--acme-weekly-limit)`)
              return Option.none<Held>()
            }
            newOrders.push(now)
            yield* Effect.ignoreLogged(state.saveNewOrders(newOrders))
          }
          return yield* order(name).pipe(
            Effect.map(Option.some),
            Effect.tap(() => Effect.sync(() => failures.delete(name))),
            Effect.catchAll((error) =>
              Effect.gen(function*() {
                const waitMs = Math.min(LAST_RETRY_MS, failed === undefined ? FIRST_RETRY_MS : failed.waitMs * 2)
                failures.set(name, { until: now + waitMs, waitMs })
                yield* Effect.logWarning(`${error.message} (tried again after ${Duration.format(Duration.millis(waitMs))})`)
                return Option.none<Held>()
              })
            )
          )
        }).pipe(
          Effect.tap(settle),
          Effect.onInterrupt(() => settle(Option.none()))
        )
      })

    /** What is held for `name`, in memory or on disk. */
    const heldFor = (name: string) =>
      Effect.gen(function*() {
        const inMemory = held.get(name)
        if (inMemory !== undefined) return Option.some(inMemory)
        const stored = yield* state.certificate(name)
        if (Option.isNone(stored)) return Option.none<Held>()
        const loaded = Effect.try(() => hold(stored.value))
        return yield* loaded.pipe(
          Effect.tap((value) => Effect.sync(() => held.set(name, value))),
          Effect.map(Option.some),
          Effect.catchAll(() => Effect.as(Effect.logWarning(`the certificate kept for ${name} cannot be read; a new one is asked for`), Option.none<Held>()))
        )
      })

    // Orders outlive the handshake that asked (the certificate serves the next visitor).
    const background = yield* Effect.scope
    const inBackground = (effect: Effect.Effect<unknown>) => Effect.asVoid(Effect.forkIn(effect, background))

    const contextFor = (name: string) =>
      Effect.gen(function*() {
        if (!isEligible(name)) return Option.none<tls.SecureContext>()
        const now = yield* Clock.currentTimeMillis
        const current = yield* heldFor(name)
        if (Option.isSome(current) && now < current.value.validTo.getTime()) {
          if (now >= renewalTime(current.value.validFrom, current.value.validTo)) yield* inBackground(obtain(name, true))
          return Option.some(current.value.context)
        }
        // None yet, or expired: this visitor waits for the order (a renewal if one was held).
        const fetched = yield* Deferred.make<Option.Option<Held>>()
        yield* inBackground(Effect.flatMap(obtain(name, Option.isSome(current)), (result) => Deferred.succeed(fetched, result)))
        const result = yield* Deferred.await(fetched).pipe(Effect.timeoutTo({ duration: HANDSHAKE_WAIT, onSuccess: (held) => held, onTimeout: Option.none }))
        return Option.map(result, (value) => value.context)
      }).pipe(
        Effect.catchAll((error) => Effect.as(Effect.logError(error.message), Option.none<tls.SecureContext>()))
      )

    const renewDue = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const name of yield* state.names) {
        const current = yield* heldFor(name)
        if (!isEligible(name)) continue
        if (Option.isNone(current) || now >= renewalTime(current.value.validFrom, current.value.validTo)) {
          yield* obtain(name, true)
        }
      }
    }).pipe(Effect.catchAll((error) => Effect.logError(error.message)))

    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(RENEWAL_INTERVAL), renewDue)))
    yield* Effect.logInfo(`ACME certificates from ${config.directoryUrl} for ${config.email}, kept in ${state.directory}`)
    return {
      contextFor,
      challengeResponse: (token) => Option.fromNullable(challenges.get(token)),
      renewDue
    }
  })

