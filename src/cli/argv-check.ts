/**
 * The mistakes @effect/cli answers badly, answered before it parses: an unknown command
 * (`spore serer`), an unknown option (`spore local 3000 --too x`, which it reports as "'--too' is
 * not a integer" because LOCAL_PORT takes the word), and a log level it does not know (reported
 * as "Invalid subcommand"). Each gets one line naming the mistake and, when one is close, what
 * was meant. Anything it does not recognise as a mistake is left to @effect/cli.
 *
 * The options each command knows are read from its own @effect/cli definitions (their usage), so
 * this list cannot drift from the commands.
 */
import { Options } from "@effect/cli"

/**
 * An option's names (`--to`, `-t`): whether it takes a value, and whether that value must be an
 * integer (for which @effect/cli would say "is not a integer").
 */
export type KnownOptions = ReadonlyMap<string, { readonly takesValue: boolean; readonly integer: boolean }>

/** The options @effect/cli adds to every command. */
const BUILT_IN: KnownOptions = new Map(
  ([["--help", false], ["-h", false], ["--version", false], ["--wizard", false], ["--completions", true], ["--log-level", true]] as const)
    .map(([name, takesValue]) => [name, { takesValue, integer: false }])
)

export const LOG_LEVELS = ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"] as const

interface UsageNode {
  readonly _tag: string
  readonly names?: ReadonlyArray<string>
  readonly acceptedValues?: { readonly _tag: "Some" | "None"; readonly value?: string }
  readonly usage?: UsageNode
  readonly left?: UsageNode
  readonly right?: UsageNode
}

/** Every option name of a command's options record, from @effect/cli's own usage of it. */
export const knownOptions = (fields: Record<string, unknown>): KnownOptions => {
  // A command's record holds its positional Args too; only the options have names.
  const options = Object.fromEntries(Object.entries(fields).filter(([, field]) => Options.isOptions(field))) as Record<string, Options.Options<unknown>>
  const known = new Map<string, { readonly takesValue: boolean; readonly integer: boolean }>()
  const walk = (node: UsageNode | undefined): void => {
    if (node === undefined) return
    if (node._tag === "Named") {
      for (const name of node.names ?? []) {
        known.set(name, { takesValue: node.acceptedValues?._tag === "Some", integer: node.acceptedValues?.value === "integer" })
      }
    }
    walk(node.usage)
    walk(node.left)
    walk(node.right)
  }
  walk(Options.getUsage(Options.all(options)) as unknown as UsageNode)
  return known
}

/** Levenshtein distance, for "did you mean". */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

/** The candidate closest to `word`, if it is close enough to be what was meant. */
export const closest = (word: string, candidates: Iterable<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const d = distance(word, candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

const meant = (suggestion: string | undefined) => suggestion === undefined ? "" : `: did you mean ${suggestion}?`

/** The first mistake in `args` (argv after the program), as a line to print, or undefined. */
export const checkArgs = (args: ReadonlyArray<string>, commands: ReadonlyMap<string, KnownOptions>): string | undefined => {
  // Help and version go to @effect/cli whatever else is there.
  if (args.some((arg) => arg === "--help" || arg === "-h" || arg === "--version")) return undefined
  let command: string | undefined
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!
    if (arg === "--") break
    const known = command === undefined ? BUILT_IN : commands.get(command)!
    if (arg.startsWith("-") && arg !== "-") {
      const [name, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined]
      if (name === "--log-level") {
        const level = inline ?? args[index + 1]
        if (level === undefined || !(LOG_LEVELS as ReadonlyArray<string>).includes(level)) {
          return `--log-level must be one of ${LOG_LEVELS.join(", ")}${level === undefined ? "" : `, not ${level}`}${meant(level === undefined ? undefined : closest(level, LOG_LEVELS))}`
        }
        if (inline === undefined) index++
        continue
      }
      const option = known.get(name) ?? BUILT_IN.get(name)
      if (option === undefined) {
        // Negative numbers are values, not options.
        if (/^-\d/.test(arg)) continue
        const where = command === undefined ? "spore" : `spore ${command}`
        return `unknown option ${name} for ${where}${meant(closest(name, [...known.keys(), ...BUILT_IN.keys()].filter((n) => n.startsWith("--"))))}`
      }
      const value = inline ?? args[index + 1]
      if (option.integer && value !== undefined && !/^-?\d+$/.test(value)) return `${name} must be a whole number, not ${value}`
      if (option.takesValue && inline === undefined) index++
      continue
    }
    if (command === undefined) {
      if (!commands.has(arg)) return `unknown command ${arg}${meant(closest(arg, commands.keys()))} (commands: ${[...commands.keys()].join(", ")})`
      command = arg
    }
  }
  return undefined
}
