/**
 * The server's TLS certificate, reloadable while it runs: on SIGHUP, and when the certificate or
 * key file changes (a renewal by certbot or acme.sh). A reload swaps what new connections are
 * offered; connections already secured keep theirs, so no tunnel or visitor is dropped. A reload
 * that fails (a half-written file, a key that does not match) is logged and the old certificate
 * kept.
 */
import * as fs from "node:fs"
import type * as tls from "node:tls"
import { Context, Effect, Layer, Option, Runtime, type Scope } from "effect"
import type { TlsConfigError } from "../errors.js"
import { describeLine, loadServerCertificate } from "./tls.js"

export interface CertificateStore {
  /** The certificate new connections get. */
  readonly current: () => tls.SecureContext
  /** Reads the files again; on failure keeps the old certificate. */
  readonly reload: Effect.Effect<void>
}

/** How often the files are looked at for a change (a stat each; renewals are rare). */
const WATCH_INTERVAL_MS = 2000

/** Loads the certificate (failing the start if it cannot) and keeps it fresh until the scope closes. */
export const makeCertificateStore = (files: { readonly certFile: string; readonly keyFile: string }): Effect.Effect<CertificateStore, TlsConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    let loaded = yield* loadServerCertificate(files.certFile, files.keyFile)
    yield* Effect.logInfo(`TLS ${describeLine(loaded.info)}`)
    const reload = loadServerCertificate(files.certFile, files.keyFile).pipe(
      Effect.flatMap((next) =>
        Effect.zipRight(
          Effect.sync(() => {
            loaded = next
          }),
          Effect.logInfo(`TLS certificate reloaded: ${describeLine(next.info)}`)
        )
      ),
      Effect.catchAll((error) => Effect.logError(`TLS certificate not reloaded, the old one is kept: ${error.message}`))
    )
    const runtime = yield* Effect.runtime<never>()
    const runReload = () => void Runtime.runFork(runtime)(reload)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.on("SIGHUP", runReload)
        // Polling, not fs.watch: renewals replace files by rename or through symlinks, which
        // fs.watch loses track of; a stat every two seconds costs nothing.
        const onChange = (now: fs.Stats, before: fs.Stats) => {
          if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino) runReload()
        }
        fs.watchFile(files.certFile, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange)
        fs.watchFile(files.keyFile, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange)
        return onChange
      }),
      (onChange) =>
        Effect.sync(() => {
          process.off("SIGHUP", runReload)
          fs.unwatchFile(files.certFile, onChange)
          fs.unwatchFile(files.keyFile, onChange)
        })
    )
    return { current: () => loaded.context, reload }
  })

/**
 * The operator's certificate (`--tls-cert/--tls-key`), if the server was given one: one store
 * for the TLS control port and the HTTPS front, so the files are read, logged and watched once.
 */
export class OperatorCertificate extends Context.Tag("spore/OperatorCertificate")<OperatorCertificate, Option.Option<CertificateStore>>() {}

export const layer = (files: Option.Option<{ readonly certFile: string; readonly keyFile: string }>) =>
  Layer.scoped(OperatorCertificate, Effect.transposeMapOption(files, makeCertificateStore))
