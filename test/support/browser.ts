/**
 * Debian's Chromium (`/usr/bin/chromium`, see scripts/install-chromium.sh) driven through
 * playwright-core, headless, for tests that assert on a real browser's DOM.
 */
import { existsSync } from "node:fs"
import { chromium, type Browser, type Page } from "playwright-core"

export const chromiumPath = "/usr/bin/chromium"

/** Whether Debian's Chromium is installed. */
export const hasChromium = (): boolean => existsSync(chromiumPath)

const chromiumArgs = [
  // Tests run as root in containers, where Chromium's namespace sandbox cannot start.
  "--no-sandbox",
  // There is no GPU in a container: render in software instead of probing for one.
  "--disable-gpu",
  // HTTP/3 would try UDP to the server first; the tests speak plain TCP on loopback.
  "--disable-quic",
  // No first-run dialogs or default-browser checks in a fresh profile.
  "--no-first-run",
  // The next three stop Chromium's own traffic to Google (safe browsing lists, component and
  // extension updates, sync). The test machines' network is closed, and without these flags
  // Chromium's connections are refused there.
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Every host name resolves to loopback, so a test can open http://app.spore.test:PORT/ (a
  // tunnel's public name) and reach its server on 127.0.0.1 without touching /etc/hosts or DNS.
  "--host-resolver-rules=MAP * 127.0.0.1"
]

/** A headless Chromium; playwright gives it a fresh, temporary user data dir. Close it yourself. */
export const launchBrowser = (extraArgs: ReadonlyArray<string> = []): Promise<Browser> =>
  chromium.launch({ executablePath: chromiumPath, headless: true, args: [...chromiumArgs, ...extraArgs], timeout: 30_000 })

/**
 * Runs `fn` with a page in a browser of its own and always closes that browser, whether `fn`
 * returns or throws. Every playwright wait on the page is bounded by `timeoutMs` unless the call
 * says otherwise, and an uncaught exception in the page's scripts fails the run.
 */
export const withPage = async <A>(fn: (page: Page) => Promise<A>, timeoutMs = 5_000, extraArgs: ReadonlyArray<string> = []): Promise<A> => {
  const browser = await launchBrowser(extraArgs)
  try {
    const page = await browser.newPage()
    page.setDefaultTimeout(timeoutMs)
    page.setDefaultNavigationTimeout(timeoutMs)
    const pageErrors: Array<Error> = []
    page.on("pageerror", (error) => pageErrors.push(error))
    const result = await fn(page)
    if (pageErrors.length > 0) {
      throw new Error(`the page threw: ${pageErrors.map((e) => e.message).join("; ")}`)
    }
    return result
  } finally {
    await browser.close()
  }
}
