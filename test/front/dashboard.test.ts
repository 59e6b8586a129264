/**
 * The HTTP tunnels' status page in a real headless Chromium: a plain node:http server serves
 * `dashboardPage` at `/` and a scripted `/v1/status` whose answers each test changes; the tests
 * assert on the DOM the page builds (the contract in src/front/dashboard.ts), never on pixels.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Page } from "playwright-core"
import { dashboardPage } from "../../src/front/dashboard.js"
import { hasChromium, withPage } from "../support/browser.js"

const KEY = "k3y-for-the-dashboard"

interface Tunnel {
  id: string
  name: string
  url: string
  online: boolean
  connections: number
  totalConnections: number
  bytesIn: number
  bytesOut: number
  node?: string
}

const tunnel = (name: string, fields: Partial<Tunnel> = {}): Tunnel => ({
  id: `id-${name}`,
  name,
  url: `http://${name}.spore.test/`,
  online: true,
  connections: 0,
  totalConnections: 0,
  bytesIn: 0,
  bytesOut: 0,
  ...fields
})

// What the scripted /v1/status answers; each test sets it.
let tunnels: Array<Tunnel> = []
let failWith: number | undefined
// The Authorization header of every /v1/status request, to see what the page sent.
let seen: Array<string | undefined> = []

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
    res.end(dashboardPage({ title: "spore" }))
  } else if (req.method === "GET" && req.url === "/v1/status") {
    seen.push(req.headers.authorization)
    if (req.headers.authorization !== `Bearer ${KEY}`) {
      res.writeHead(401, { "content-type": "application/json" })
      res.end(JSON.stringify({ error: "unauthorized" }))
    } else if (failWith !== undefined) {
      res.writeHead(failWith)
      res.end()
    } else {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ tunnels }))
    }
  } else {
    res.writeHead(404)
    res.end()
  }
})
let port = 0
const base = () => `http://127.0.0.1:${port}`

const cell = (page: Page, name: string, field: string) =>
  page.locator(`#tunnels tbody tr[data-tunnel="${name}"] td[data-field="${field}"]`)

const waitForStatus = (page: Page, text: string | RegExp) =>
  page.locator("#status", { hasText: text }).waitFor()

describe("the HTTP tunnels' dashboard in Chromium", () => {
  beforeAll(async () => {
    if (!hasChromium()) {
      // CI runs as root and gets it from apt; elsewhere the script says how to install it, and
      // this hook fails rather than skip: a browser test that never runs proves nothing.
      execFileSync("bash", ["scripts/install-chromium.sh"], { stdio: "inherit", timeout: 600_000 })
    }
    expect(hasChromium()).toBe(true)
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    port = (server.address() as AddressInfo).port
  }, 660_000)

  afterAll(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  beforeEach(() => {
    tunnels = []
    failWith = undefined
    seen = []
  })

  it("renders one row per tunnel, sorted by name, with the exact counters in data-value", async () => {
    tunnels = [
      tunnel("beta", { node: "10.0.0.2:7000", online: false, totalConnections: 7, bytesIn: 1536, bytesOut: 5 * 1024 * 1024 }),
      tunnel("alpha", { connections: 2, totalConnections: 40, bytesIn: 512, bytesOut: 123_456_789 })
    ]
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=${KEY}`)
      await waitForStatus(page, /^updated \d\d:\d\d:\d\d$/)
      expect(await page.locator("#status").getAttribute("class") ?? "").not.toContain("error")

      const rows = page.locator("#tunnels tbody tr")
      expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-tunnel")))).toEqual([
        "alpha",
        "beta"
      ])
      const fields = await rows.first().locator("td").evaluateAll((tds) => tds.map((td) => td.getAttribute("data-field")))
      expect(fields).toEqual(["name", "url", "online", "client", "node", "up", "connections", "totalConnections", "bytesIn", "bytesOut", "plot"])

      expect(await cell(page, "alpha", "name").textContent()).toBe("alpha")
      const link = cell(page, "alpha", "url").locator("a")
      expect(await link.textContent()).toBe("http://alpha.spore.test/")
      expect(await link.getAttribute("href")).toBe("http://alpha.spore.test/")
      expect(await cell(page, "alpha", "online").textContent()).toBe("online")
      expect(await cell(page, "beta", "online").textContent()).toBe("offline")
      // A server outside a cluster holds every tunnel itself: no node to name.
      expect(await cell(page, "alpha", "node").textContent()).toBe("—")
      // One held by another node of a cluster says which.
      expect(await cell(page, "beta", "node").textContent()).toBe("10.0.0.2:7000")

      const counters = { connections: [2, 0], totalConnections: [40, 7], bytesIn: [512, 1536], bytesOut: [123_456_789, 5 * 1024 * 1024] }
      for (const [field, [alpha, beta]] of Object.entries(counters)) {
        expect(await cell(page, "alpha", field).getAttribute("data-value")).toBe(String(alpha))
        expect(await cell(page, "beta", field).getAttribute("data-value")).toBe(String(beta))
      }
      expect(await cell(page, "alpha", "connections").textContent()).toBe("2")
      // Bytes read as sizes; the exact number stays in data-value.
      expect(await cell(page, "alpha", "bytesIn").textContent()).toBe("512 B")
      expect(await cell(page, "beta", "bytesIn").textContent()).toBe("1.5 KiB")
      expect(await cell(page, "beta", "bytesOut").textContent()).toBe("5.0 MiB")
      expect(await cell(page, "alpha", "bytesOut").textContent()).toBe("118 MiB")

      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every((header) => header === `Bearer ${KEY}`)).toBe(true)
    })
  })

  it("follows the counts as they change, polling every second", async () => {
    tunnels = [tunnel("alpha", { connections: 1, bytesIn: 100 }), tunnel("beta")]
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=${KEY}`)
      await cell(page, "alpha", "bytesIn").and(page.locator('[data-value="100"]')).waitFor()

      tunnels = [tunnel("alpha", { connections: 3, totalConnections: 9, bytesIn: 2048 }), tunnel("beta", { online: false })]
      // Two polls at most; the default 5 s bound leaves room for a slow machine.
      await cell(page, "alpha", "bytesIn").and(page.locator('[data-value="2048"]')).waitFor()
      expect(await cell(page, "alpha", "bytesIn").textContent()).toBe("2.0 KiB")
      expect(await cell(page, "alpha", "connections").getAttribute("data-value")).toBe("3")
      expect(await cell(page, "alpha", "totalConnections").getAttribute("data-value")).toBe("9")
      expect(await cell(page, "beta", "online").textContent()).toBe("offline")

      // A tunnel that goes away loses its row.
      tunnels = [tunnel("beta")]
      await page.locator('tr[data-tunnel="alpha"]').waitFor({ state: "detached" })
      expect(await page.locator("#tunnels tbody tr").count()).toBe(1)
    })
  })

  it("shows a name with markup as text and creates no element from it", async () => {
    const name = `<img src=x onerror="window.__pwned = 1">`
    tunnels = [tunnel("plain"), tunnel("x", { name, url: "javascript:window.__pwned = 2" })]
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=${KEY}`)
      await page.locator("#tunnels tbody tr").nth(1).waitFor()
      const names = await page.locator('#tunnels td[data-field="name"]').allTextContents()
      expect(names).toContain(name)
      expect(await page.locator("tr[data-tunnel]").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-tunnel")))).toContain(name)
      expect(await page.locator("img").count()).toBe(0)
      // A non-web URL is shown but is not a link target.
      const link = page.locator('#tunnels td[data-field="url"] a', { hasText: "javascript:" })
      expect(await link.getAttribute("href")).toBeNull()
      await link.click()
      expect(await page.evaluate("window.__pwned")).toBeUndefined()
    })
    // And the page's own script never reaches for innerHTML.
    expect(dashboardPage({ title: "spore" })).not.toContain("innerHTML")
  })

  it("escapes the title", () => {
    const html = dashboardPage({ title: `<script>alert(1)</script> & "x"` })
    expect(html).toContain("<title>&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;x&#34;</title>")
  })

  it("takes the key out of the URL and keeps it across a reload in sessionStorage", async () => {
    tunnels = [tunnel("alpha")]
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=${KEY}`)
      await page.locator('tr[data-tunnel="alpha"]').waitFor()
      expect(page.url()).toBe(`${base()}/`)
      expect(await page.evaluate("sessionStorage.getItem('spore.dashboard.token')")).toBe(KEY)

      tunnels = [tunnel("alpha"), tunnel("after-reload")]
      seen = []
      await page.reload()
      // A fresh document: the row can only come from a poll made with the stored key.
      await page.locator('tr[data-tunnel="after-reload"]').waitFor()
      await waitForStatus(page, /^updated /)
      expect(page.url()).toBe(`${base()}/`)
      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every((header) => header === `Bearer ${KEY}`)).toBe(true)
    })
  })

  it("without a key, or with a wrong one, says how to open the page", async () => {
    tunnels = [tunnel("alpha")]
    const message = "a valid API key is needed: open this page as /#token=YOUR_KEY"
    await withPage(async (page) => {
      await page.goto(`${base()}/`)
      await waitForStatus(page, message)
      expect(await page.locator("#status").textContent()).toBe(message)
      expect(await page.locator("#status").getAttribute("class")).toContain("error")
      expect(await page.locator("tr[data-tunnel]").count()).toBe(0)
      // Without a key the request goes out bare (a dashboard listener may need none).
      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every((header) => header === undefined)).toBe(true)
    })
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=wrong`)
      await waitForStatus(page, message)
      expect(page.url()).toBe(`${base()}/`)
    })
  })

  it("with zero tunnels shows a single no-tunnels row", async () => {
    tunnels = [tunnel("alpha")]
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=${KEY}`)
      await page.locator('tr[data-tunnel="alpha"]').waitFor()
      tunnels = []
      await page.locator("#no-tunnels").waitFor()
      expect(await page.locator("#tunnels tbody tr").count()).toBe(1)
      expect(await page.locator("#no-tunnels").textContent()).toBe("no tunnels")
    })
  })

  it("says the server is unreachable on a failed poll and keeps polling until it answers", async () => {
    tunnels = [tunnel("alpha")]
    failWith = 502
    await withPage(async (page) => {
      await page.goto(`${base()}/#token=${KEY}`)
      await waitForStatus(page, "server unreachable")
      expect(await page.locator("#status").getAttribute("class")).toContain("error")
      failWith = undefined
      await waitForStatus(page, /^updated /)
      expect(await page.locator("#status").getAttribute("class")).not.toContain("error")
      await page.locator('tr[data-tunnel="alpha"]').waitFor()
    })
  })

  it("reaches a tunnel-style host name on loopback (the helper's resolver rule)", async () => {
    tunnels = [tunnel("alpha")]
    await withPage(async (page) => {
      await page.goto(`http://dashboard.spore.test:${port}/#token=${KEY}`)
      await page.locator('tr[data-tunnel="alpha"]').waitFor()
      expect(page.url()).toBe(`http://dashboard.spore.test:${port}/`)
    })
  })
})
