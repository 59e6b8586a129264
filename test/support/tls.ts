/**
 * The TLS test certificates (test/fixtures/tls, made by scripts/make-test-certs.sh): a CA, and
 * server certificates it signed for localhost and 127.0.0.1 ("server", "renewed") and for
 * other.example ("other").
 */
import { fileURLToPath } from "node:url"

/** The path of a fixture file, e.g. `tlsFixture("ca.pem")`. */
export const tlsFixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))

/** The server certificate for localhost and 127.0.0.1, and its key. */
export const TEST_CERTIFICATE = { certFile: tlsFixture("server.pem"), keyFile: tlsFixture("server-key.pem") }
