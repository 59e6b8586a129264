/**
 * Waiting for real I/O on loopback in tests that run on the TestClock.
 */
import { Effect, TestServices } from "effect"

/** A short real-time pause, so that I/O on loopback can happen between clock steps (it times nothing). */
export const letIoHappen = TestServices.provideLive(Effect.sleep("5 millis"))

/** Lets real I/O happen until `condition` holds (at most 1,000 pauses). */
export const eventually = (condition: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let step = 0; step < 1000; step++) {
      if (condition()) return
      yield* letIoHappen
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })
