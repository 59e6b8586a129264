/**
 * The inspector in a real headless Chromium, against the real executables: `spore server` with
 * its front and dashboard, `spore http` before the local app. Requests made through the tunnel
 * (by host and by path) appear in the page's log with their status, the tunnel's plot counts
 * them, a request's detail shows both heads and bodies, and a replay goes through the tunnel
 * again and shows at the top of the log. The page must raise no JavaScript or console error.
 *
 * A screenshot of each page is written to $SPORE_SCREENSHOTS (default: the system's temp dir).
 */
import { describe, expect, it } from "@effect/vitest"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { fetch } from "undici"
import type { Page } from "playwright-core"
import { hasChromium, withPage } from "../support/browser.js"
import { DOMAIN, KEY_A, localApp, loopbackAgent, startHttpClient, startHttpServer, writeKeys } from "../support/http.js"
import { LOOPBACK } from "../support/net.js"
import { startSpore, within } from "../support/process.js"

const SCREENSHOTS = process.env.SPORE_SCREENSHOTS ?? tmpdir()

/** What the inspector shows once it has `atLeast` requests of tunnel `app`, after clicking it. */
const readInspector = async (page: Page, atLeast: number) => {
  if (await page.locator("#inspector").isHidden()) {
    await page.locator('#tunnels tr[data-tunnel="app"] td[data-field="name"]').click()
    await page.locator("#inspector").waitFor()
  }
  await page.locator("#requests tbody tr[data-request]").nth(atLeast - 1).waitFor()
  const rows = await page.locator("#requests tbody tr").evaluateAll((rows) =>
    rows.map((row) => ({
      method: row.querySelector('[data-field="method"]')?.textContent,
      path: row.querySelector('[data-field="path"]')?.textContent,
      status: row.querySelector('[data-field="status"]')?.textContent
    })))
  const plotted = Number(await page.locator('#tunnels tr[data-tunnel="app"] polyline[data-series="requests"]').getAttribute("data-total"))
  return { rows, plotted }
}

describe.skipIf(!hasChromium())("the inspector, in Chromium", () => {
  it.scopedLive("logs the tunnel's requests, plots them, shows one in detail, and replays it", () =>
    Effect.gen(function*() {
      const app = yield* localApp
      const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A), dashboard: true })
      yield* startHttpClient(server.port, app.port, { key: KEY_A, name: "app" })
      // A TCP tunnel to the same app, which only the operator's dashboard lists.
      const controlPort = (yield* within("the control port", 15, server.process.waitFor(/server listening on 127\.0\.0\.1:(\d+)/)))[1]!
      const tcp = yield* startSpore(["local", String(app.port), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", controlPort])
      const tcpPort = Number((yield* within("the tcp tunnel", 15, tcp.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      const agent = yield* loopbackAgent()
      const byHost = (path: string) => `http://app.${DOMAIN}:${server.port}${path}`
      yield* Effect.promise(async () => {
        for (const url of [byHost("/hello?x=1"), `http://${LOOPBACK}:${server.port}/t/app/page`]) {
          await (await fetch(url, { dispatcher: agent })).text()
        }
        await (await fetch(byHost("/hash"), { dispatcher: agent, method: "POST", body: "ping-body" })).text()
        await (await fetch(`http://${LOOPBACK}:${tcpPort}/over-tcp`)).text()
      })

      const seen = yield* within("the browser", 50, Effect.promise(() =>
        withPage(async (page) => {
          const consoleErrors: Array<string> = []
          page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()))
          await page.setViewportSize({ width: 1280, height: 900 })
          await page.goto(`http://${LOOPBACK}:${server.port}/#token=${KEY_A}`)
          const before = await readInspector(page, 3)

          await page.locator('#requests tbody tr[data-request]', { hasText: "/hash" }).first().click()
          await page.locator("#detail").waitFor()
          await page.locator("#response-head", { hasText: "HTTP/1.1 200" }).waitFor()
          const detail = {
            title: await page.locator("#detail-title").textContent(),
            requestHead: await page.locator("#request-head").textContent(),
            requestBody: await page.locator("#request-body").textContent(),
            responseBody: await page.locator("#response-body").textContent(),
            replayable: await page.locator("#replay").isEnabled()
          }
          await page.locator("#replay").click()
          await page.locator("#replay-status", { hasText: "replayed" }).waitFor()
          const after = await readInspector(page, 4)
          await page.screenshot({ path: join(SCREENSHOTS, "spore-inspector.png"), fullPage: true })

          // The operator's dashboard, without a key, inspects the same tunnel.
          await page.goto(`http://${LOOPBACK}:${server.dashboardPort}/`)
          const operator = await readInspector(page, 4)
          const tcpRow = page.locator(`#tcp-tunnels tr[data-port="${tcpPort}"]`)
          await tcpRow.locator('td[data-field="totalVisitors"][data-value="1"]').waitFor()
          const tcpSeen = {
            client: await tcpRow.locator('td[data-field="client"]').textContent(),
            up: await tcpRow.locator('td[data-field="up"]').textContent(),
            bytesOut: Number(await tcpRow.locator('td[data-field="bytesOut"]').getAttribute("data-value")),
            plotted: Number(await tcpRow.locator('polyline[data-series="requests"]').getAttribute("data-total")),
            httpClient: await page.locator('#tunnels tr[data-tunnel="app"] td[data-field="client"]').textContent(),
            httpUp: await page.locator('#tunnels tr[data-tunnel="app"] td[data-field="up"]').textContent()
          }
          await page.screenshot({ path: join(SCREENSHOTS, "spore-inspector-operator.png"), fullPage: true })
          // The owner's page lists no TCP tunnel: they have no owner.
          await page.goto(`http://${LOOPBACK}:${server.port}/#token=${KEY_A}`)
          await page.locator('#tunnels tr[data-tunnel="app"]').waitFor()
          const ownerSeesTcp = await page.locator("#tcp-tunnels").isVisible()
          return { before, detail, after, operator, tcpSeen, ownerSeesTcp, consoleErrors }
        }, 10_000)))

      expect(seen.before.rows).toEqual([
        { method: "POST", path: "/hash", status: "200" },
        { method: "GET", path: "/t/app/page", status: "200" },
        { method: "GET", path: "/hello?x=1", status: "200" }
      ])
      expect(seen.before.plotted).toBeGreaterThanOrEqual(3)
      expect(seen.detail.title).toBe("POST /hash → 200")
      expect(seen.detail.requestHead).toMatch(/^POST \/hash HTTP\/1\.1\r\nhost: app\.spore\.test:\d+\r\n/)
      expect(seen.detail.requestBody).toBe("ping-body")
      expect(seen.detail.responseBody).toContain(`"length":9`)
      expect(seen.detail.replayable).toBe(true)
      // The replay went through the tunnel again: the app answered it, and the log shows it first.
      expect(seen.after.rows[0]).toEqual({ method: "POST", path: "/hash", status: "200" })
      expect(seen.after.rows).toHaveLength(4)
      expect(seen.after.plotted).toBeGreaterThanOrEqual(4)
      expect(seen.operator.rows).toEqual(seen.after.rows)
      expect(seen.tcpSeen.client).toBe(LOOPBACK)
      expect(seen.tcpSeen.up).toMatch(/^\d+ s$/)
      expect(seen.tcpSeen.bytesOut).toBeGreaterThan(100)
      expect(seen.tcpSeen.plotted).toBe(1)
      expect(seen.tcpSeen.httpClient).toBe(LOOPBACK)
      expect(seen.tcpSeen.httpUp).toMatch(/^\d+ s$/)
      expect(seen.ownerSeesTcp).toBe(false)
      expect(seen.consoleErrors).toEqual([])
    }))
})
