/**
 * The responses the HTTP front writes itself (bad request, no such tunnel, tunnel down, ...): a
 * whole HTTP/1.1 response with a small HTML page, after which the connection is closed.
 */

const REASONS: Record<number, string> = {
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported"
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)

/**
 * `Connection: close` because the front ends the connection after an error rather than read on
 * from a request it refused (its body may not even be delimited); `no-store` so that no cache
 * keeps an error meant for one moment.
 */
export const errorResponse = (
  status: number,
  title: string,
  detail: string,
  headers: ReadonlyArray<string> = []
): Uint8Array => {
  const body = Buffer.from(
    "<!doctype html>\n" +
      `<html><head><meta charset="utf-8"><title>${status} ${escapeHtml(title)}</title></head>\n` +
      `<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(detail)}</p><hr><p>spore</p></body></html>\n`,
    "utf8"
  )
  const head = `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\n` +
    "Content-Type: text/html; charset=utf-8\r\n" +
    `Content-Length: ${body.length}\r\n` +
    "Connection: close\r\n" +
    "Cache-Control: no-store\r\n" +
    headers.map((line) => `${line}\r\n`).join("") +
    "\r\n"
  return Buffer.concat([Buffer.from(head, "latin1"), body])
}
