/** `spore server`: flags, their validation, and the running server. */
import { Command } from "@effect/cli"
import { Duration, Effect, Option } from "effect"
import type { ServerConfig } from "../server/config.js"
import * as Server from "../server/server.js"
import { bufferOptions, checkBuffers, checkIpAddress, checkPort, checkSeconds, checkSecret, integerOption, optionalTextOption, secretOption, textOption, UsageError } from "./options.js"

const options = {
  minPort: integerOption("min-port", "Lowest public port a tunnel may get.", {
    default: 1024,
    env: ["SPORE_MIN_PORT", "BORE_MIN_PORT"]
  }),
  maxPort: integerOption("max-port", "Highest public port a tunnel may get.", {
    default: 65535,
    env: ["SPORE_MAX_PORT", "BORE_MAX_PORT"]
  }),
  secret: secretOption,
  bindAddr: textOption("bind-addr", "IP address the control port listens on.", {
    default: "0.0.0.0",
    env: ["SPORE_BIND_ADDR"]
  }),
  bindTunnels: optionalTextOption("bind-tunnels", "IP address the public tunnel ports listen on. Default: the --bind-addr.", {
    env: ["SPORE_BIND_TUNNELS"]
  }),
  controlPort: integerOption("control-port", "Port clients connect to (bore's is 7835; 0 picks a free one).", {
    default: 7835,
    env: ["SPORE_CONTROL_PORT"]
  }),
  leaseSeconds: integerOption(
    "lease-seconds",
    "How long a Spore client's port stays reserved for it after its connection is lost.",
    { default: 30, env: ["SPORE_LEASE_SECONDS"] }
  ),
  ...bufferOptions
}

type Flags = Command.Command.ParseConfig<typeof options>

const toConfig = (flags: Flags): Effect.Effect<ServerConfig, UsageError> =>
  Effect.gen(function*() {
    const minPort = yield* checkPort("min-port", flags.minPort, { allowZero: false })
    const maxPort = yield* checkPort("max-port", flags.maxPort, { allowZero: false })
    if (minPort > maxPort) return yield* new UsageError({ message: "port range is empty (--min-port is above --max-port)" })
    const bindAddr = yield* checkIpAddress("bind-addr", flags.bindAddr)
    const bindTunnels = yield* checkIpAddress("bind-tunnels", Option.getOrElse(flags.bindTunnels, () => bindAddr))
    return {
      minPort,
      maxPort,
      secret: yield* checkSecret(flags.secret),
      bindAddr,
      bindTunnels,
      controlPort: yield* checkPort("control-port", flags.controlPort, { allowZero: true }),
      lease: Duration.seconds(yield* checkSeconds("lease-seconds", flags.leaseSeconds, { min: 0 })),
      buffers: yield* checkBuffers(flags)
    }
  })

export const serverCommand = Command.make("server", options, (flags) =>
  Effect.gen(function*() {
    const config = yield* toConfig(flags)
    yield* Server.start(config)
    return yield* Effect.never
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("Run the public server that clients open tunnels on.")
  )
