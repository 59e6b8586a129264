/**
 * What the ACME certificates keep on disk, under `--state-dir`, so that a restart neither asks
 * for new certificates nor makes a new account:
 *
 *   STATE/acme/HOST/account-key.pem          the account's key (the account is found again by it)
 *   STATE/acme/HOST/certificates/NAME.pem     a name's certificate chain, leaf first
 *   STATE/acme/HOST/certificates/NAME-key.pem its private key
 *   STATE/acme/HOST/new-orders.json           when certificates for new names were asked for
 *                                             (the rate guard's memory across restarts)
 *
 * HOST is the ACME directory's host (and port), so switching between Let's Encrypt's staging and
 * production directories never mixes their accounts or certificates. Keys are written 0600, and
 * every file by a rename, so a crash never leaves half a certificate to be loaded.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Option } from "effect"
import { StateDirError } from "../errors.js"

export interface StoredCertificate {
  /** The chain, leaf first (PEM). */
  readonly cert: string
  readonly key: string
}

export interface AcmeState {
  readonly directory: string
  readonly accountKey: Effect.Effect<Option.Option<string>, StateDirError>
  readonly saveAccountKey: (pem: string) => Effect.Effect<void, StateDirError>
  readonly certificate: (name: string) => Effect.Effect<Option.Option<StoredCertificate>, StateDirError>
  readonly saveCertificate: (name: string, certificate: StoredCertificate) => Effect.Effect<void, StateDirError>
  /** Every name a certificate is kept for. */
  readonly names: Effect.Effect<ReadonlyArray<string>, StateDirError>
  /** Epoch milliseconds of the new-name orders recorded. */
  readonly newOrders: Effect.Effect<ReadonlyArray<number>, StateDirError>
  readonly saveNewOrders: (times: ReadonlyArray<number>) => Effect.Effect<void, StateDirError>
}

const attempt = <A>(file: string, action: () => A) =>
  Effect.try({
    try: action,
    catch: (error) => new StateDirError({ path: file, reason: (error as NodeJS.ErrnoException).code ?? String(error) })
  })

const readOptional = (file: string) =>
  attempt(file, () => {
    try {
      return Option.some(fs.readFileSync(file, "utf8"))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return Option.none<string>()
      throw error
    }
  })

/** Writes by a rename: a reader sees the old file or the new one, never a part. */
const writeAtomically = (file: string, text: string, mode: number) =>
  attempt(file, () => {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    const temporary = `${file}.${process.pid}.tmp`
    fs.writeFileSync(temporary, text, { mode })
    fs.renameSync(temporary, file)
  })

/** Only names that are DNS names reach the disk (they come from SNI, a visitor's bytes). */
const DNS_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/

export const makeAcmeState = (stateDir: string, directoryUrl: string): Effect.Effect<AcmeState, StateDirError> =>
  Effect.gen(function*() {
    const directory = path.join(stateDir, "acme", new URL(directoryUrl).host.replace(":", "_"))
    const certificates = path.join(directory, "certificates")
    yield* attempt(certificates, () => fs.mkdirSync(certificates, { recursive: true, mode: 0o700 }))
    const certFile = (name: string) => {
      if (!DNS_NAME.test(name)) throw new Error(`not a DNS name: ${name}`)
      return path.join(certificates, `${name}.pem`)
    }
    const keyFile = (name: string) => path.join(certificates, `${name}-key.pem`)
    const accountKeyFile = path.join(directory, "account-key.pem")
    const ordersFile = path.join(directory, "new-orders.json")
    return {
      directory,
      accountKey: readOptional(accountKeyFile),
      saveAccountKey: (pem) => writeAtomically(accountKeyFile, pem, 0o600),
      certificate: (name) =>
        Effect.gen(function*() {
          const cert = yield* readOptional(certFile(name))
          const key = yield* readOptional(keyFile(name))
          return Option.isSome(cert) && Option.isSome(key) ? Option.some({ cert: cert.value, key: key.value }) : Option.none()
        }),
      // The key first: a certificate on disk always has its key beside it.
      saveCertificate: (name, { cert, key }) =>
        Effect.zipRight(writeAtomically(keyFile(name), key, 0o600), writeAtomically(certFile(name), cert, 0o644)),
      names: attempt(certificates, () =>
        fs.readdirSync(certificates)
          .filter((file) => file.endsWith(".pem") && !file.endsWith("-key.pem"))
          .map((file) => file.slice(0, -".pem".length))),
      newOrders: Effect.map(readOptional(ordersFile), (text) => {
        if (Option.isNone(text)) return []
        try {
          const times: unknown = JSON.parse(text.value)
          return Array.isArray(times) ? times.filter((time): time is number => typeof time === "number") : []
        } catch {
          return []
        }
      }),
      saveNewOrders: (times) => writeAtomically(ordersFile, JSON.stringify(times), 0o644)
    }
  })
