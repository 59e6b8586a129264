import { describe, expect, it } from "vitest"
import { keepInsidePrefix, rewriteCookiePath, rewriteLocation } from "../../src/front/response-head.js"

describe("a path-routed response kept inside its prefix", () => {
  it("moves a Location that leaves the prefix on the visitor's host inside it, as proxy_redirect does", () => {
    const cases: Array<[string, string]> = [
      ["/about", "/t/app/about"],
      ["/", "/t/app/"],
      ["/t/app/already", "/t/app/already"],
      ["/t/app", "/t/app"],
      ["/t/apple", "/t/app/t/apple"],
      ["http://relay.example/about?x=1#top", "http://relay.example/t/app/about?x=1#top"],
      ["https://RELAY.example/t/app/x", "https://RELAY.example/t/app/x"],
      ["http://relay.example", "http://relay.example/t/app/"],
      ["https://elsewhere.example/about", "https://elsewhere.example/about"],
      ["//cdn.example/x", "//cdn.example/x"],
      ["relative/path", "relative/path"]
    ]
    for (const [location, kept] of cases) expect(rewriteLocation(location, "/t/app", "relay.example"), location).toBe(kept)
  })

  it("moves a cookie's Path inside the prefix, and leaves a cookie without one alone", () => {
    expect(rewriteCookiePath("sid=1; Path=/; HttpOnly", "/t/app")).toBe("sid=1; Path=/t/app/; HttpOnly")
    expect(rewriteCookiePath("sid=1; path=/api", "/t/app")).toBe("sid=1; path=/t/app/api")
    expect(rewriteCookiePath("sid=1; Path=/t/app/x", "/t/app")).toBe("sid=1; Path=/t/app/x")
    expect(rewriteCookiePath("sid=1; HttpOnly", "/t/app")).toBe("sid=1; HttpOnly")
    expect(rewriteCookiePath("path=/; Secure", "/t/app")).toBe("path=/; Secure")
  })

  it("rewrites the first head (after any 100 Continue), split anywhere, and passes every other byte untouched", () => {
    const response = "HTTP/1.1 100 Continue\r\n\r\n" +
      "HTTP/1.1 302 Found\r\nLocation: /login\r\nSet-Cookie: a=1; Path=/\r\nContent-Length: 30\r\n\r\n" +
      "HTTP/1.1 302 Found\r\nLocation: /x"
    const expected = "HTTP/1.1 100 Continue\r\n\r\n" +
      "HTTP/1.1 302 Found\r\nLocation: /t/app/login\r\nSet-Cookie: a=1; Path=/t/app/\r\nContent-Length: 30\r\n\r\n" +
      "HTTP/1.1 302 Found\r\nLocation: /x"
    for (let split = 1; split < response.length; split += 7) {
      const transform = keepInsidePrefix("/t/app", "relay.example")
      const out = Buffer.concat([
        transform.push(Buffer.from(response.slice(0, split), "latin1")),
        transform.push(Buffer.from(response.slice(split), "latin1")),
        transform.flush()
      ]).toString("latin1")
      expect(out, `split at ${split}`).toBe(expected)
    }
  })

  it("passes a 101 and what follows, a head that never ends, and a non-HTTP answer through", () => {
    const upgrade = keepInsidePrefix("/t/app", undefined)
    expect(upgrade.push(Buffer.from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 302 x\r\nLocation: /a\r\n\r\n")).toString())
      .toBe("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 302 x\r\nLocation: /a\r\n\r\n")
    const cut = keepInsidePrefix("/t/app", undefined)
    expect(cut.push(Buffer.from("HTTP/1.1 200 OK\r\nX: y")).length).toBe(0)
    expect(cut.flush().toString()).toBe("HTTP/1.1 200 OK\r\nX: y")
    const huge = keepInsidePrefix("/t/app", undefined)
    const long = Buffer.from(`HTTP/1.1 200 OK\r\nX: ${"y".repeat(70 * 1024)}`)
    expect(huge.push(long).equals(long)).toBe(true)
    expect(keepInsidePrefix("/t/app", undefined).push(Buffer.from("garbage\r\n\r\nmore")).toString()).toBe("garbage\r\n\r\nmore")
  })
})
