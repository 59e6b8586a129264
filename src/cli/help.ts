/**
 * `--help`, in Spore's words: one line per option (its names, a placeholder for its value, and
 * the description written beside it, which says its default and environment variables), usage
 * as `spore COMMAND ...`, and no colour at all, so piped help and NO_COLOR need nothing special.
 * @effect/cli's own help gives each option five lines of generic filler ("A user-defined piece of
 * text.", "This setting is optional."); the descriptions and names are read from the same
 * definitions, so they cannot drift from the commands.
 */
import { Options } from "@effect/cli"

/** What a command's help is made of. */
export interface CommandHelp {
  readonly name: string
  readonly description: string
  /** Its positional arguments in the usage line, e.g. `LOCAL_PORT...`. */
  readonly args: string
  /** What they are, a line each. */
  readonly argLines?: ReadonlyArray<readonly [string, string]>
  /** Its @effect/cli options record (Args among them are skipped). */
  readonly fields: Record<string, unknown>
  /** Lines after the options: an example or two. */
  readonly footer?: ReadonlyArray<string>
}

interface DocNode {
  readonly _tag: string
  readonly value?: unknown
  readonly left?: DocNode
  readonly right?: DocNode
  readonly definitions?: ReadonlyArray<readonly [DocNode, DocNode]>
}

const spanText = (node: DocNode | undefined): string => {
  if (node === undefined) return ""
  if (node._tag === "Text" || node._tag === "Code" || node._tag === "URI") return String(node.value)
  if (node._tag === "Sequence") return spanText(node.left) + spanText(node.right)
  if (node.value !== undefined && typeof node.value === "object") return spanText(node.value as DocNode)
  return ""
}

const paragraphs = (node: DocNode | undefined, into: Array<string> = []): Array<string> => {
  if (node === undefined) return into
  if (node._tag === "Paragraph") into.push(spanText(node.value as DocNode))
  paragraphs(node.left, into)
  paragraphs(node.right, into)
  return into
}

const definitions = (node: DocNode | undefined, into: Array<readonly [string, ReadonlyArray<string>]> = []) => {
  if (node === undefined) return into
  if (node._tag === "DescriptionList") for (const [term, doc] of node.definitions ?? []) into.push([spanText(term), paragraphs(doc)])
  definitions(node.left, into)
  definitions(node.right, into)
  return into
}

// @effect/cli's own sentences: the type of a value, and whether it is optional, repeated or
// settable from the environment (our descriptions say which variables).
const FILLER = [
  /^A user-defined piece of text( that is confidential)?\.$/,
  /^An? (integer|true or false value|existing file|floating point number|file|directory|path|date)\.?/,
  /^This (setting|option|argument) /
]

const PLACEHOLDERS: Record<string, string> = { text: "VALUE", integer: "N", redacted: "SECRET", file: "FILE", float: "X" }

/** Placeholders that say more than the value's type, by option name. */
const NAMED: Record<string, string> = {
  "--to": "HOST[:PORT]", "--local-host": "HOST", "--local-port": "PORT", "--metrics-addr": "IP:PORT", "--bind-addr": "IP",
  "--bind-tunnels": "IP", "--http-addr": "IP:PORT", "--https-addr": "IP:PORT", "--dashboard": "IP:PORT", "--domain": "DOMAIN",
  "--tls-ca": "FILE", "--tls-cert": "FILE", "--tls-key": "FILE", "--acme-ca": "FILE", "--api-keys": "FILE", "--state-dir": "DIR",
  "--tls-fingerprint": "SHA256", "--tls-servername": "NAME", "--name": "NAME", "--proxy-protocol": "v1|v2",
  "--log-format": "text|json", "--acme-email": "EMAIL", "--acme-directory": "URL", "--ttl": "DURATION",
  "--basic-auth": "USER:PASS", "--host-header": "rewrite|HOST", "--bootstrap-server": "HOST:PORT",
  "--broker-address": "ID=HOST:PORT", "--allow-visitor": "CIDR", "--deny-visitor": "CIDR", "--trusted-proxy": "CIDR",
  "--cluster": "REDIS_URL", "--node-addr": "IP:PORT"
}

/** `(-t, --to text)...` → `-t, --to HOST[:PORT]...`. */
const term = (text: string) => {
  const bare = text.replace(/^\(|\)$/g, "").replace(/\)(\.\.\.)$/, "$1")
  return bare.replace(/(--[a-z0-9-]+) (text|integer|redacted|file|float)(\.\.\.)?$/, (_, name: string, type: string, more: string | undefined) =>
    `${name} ${NAMED[name] ?? PLACEHOLDERS[type]}${more ?? ""}`)
}

const GLOBAL: ReadonlyArray<readonly [string, string]> = [
  ["--log-level LEVEL", "all, trace, debug, info (the default), warning, error, fatal or none; before the command."],
  ["-h, --help", "This help."],
  ["--version", "The version."]
]

/** A command's options as [names, description] rows. */
export const optionRows = (fields: Record<string, unknown>): Array<readonly [string, string]> => {
  const options = Object.fromEntries(Object.entries(fields).filter(([, field]) => Options.isOptions(field))) as Record<string, Options.Options<unknown>>
  return definitions(Options.getHelp(Options.all(options)) as unknown as DocNode).map(([name, texts]) => {
    const own = texts.filter((text) => !FILLER.some((filler) => filler.test(text)))
    return [term(name), own.join(" ")] as const
  })
}

/** Rows as aligned lines: `  NAMES  description`. */
const aligned = (rows: ReadonlyArray<readonly [string, string]>) => {
  const width = Math.min(30, Math.max(...rows.map(([name]) => name.length)))
  return rows.map(([name, text]) => name.length > width ? `  ${name}\n  ${" ".repeat(width)}  ${text}` : `  ${name.padEnd(width)}  ${text}`)
}

export const commandHelp = (version: string, help: CommandHelp): string =>
  [
    `spore ${help.name} (spore ${version}): ${help.description}`,
    "",
    `Usage: spore [--log-level LEVEL] ${help.name} [OPTIONS]${help.args === "" ? "" : ` ${help.args}`}`,
    ...(help.argLines === undefined ? [] : ["", "Arguments:", ...aligned(help.argLines)]),
    "",
    "Options:",
    ...aligned([...optionRows(help.fields), ...GLOBAL]),
    ...(help.footer === undefined ? [] : ["", ...help.footer])
  ].join("\n")

export const programHelp = (version: string, commands: ReadonlyArray<CommandHelp>): string =>
  [
    `spore ${version}: a TCP tunnel that speaks the bore protocol, with HTTP tunnels and a Kafka proxy.`,
    "",
    "Usage: spore [--log-level LEVEL] COMMAND [OPTIONS]",
    "",
    "Commands:",
    ...aligned(commands.map((command) => [command.name, command.description] as const)),
    "",
    "Options:",
    ...aligned(GLOBAL),
    "",
    "spore COMMAND --help lists a command's options. For example:",
    "  spore server --min-port 20000 --max-port 21000",
    "  spore local 3000 --to my.server.example"
  ].join("\n")
