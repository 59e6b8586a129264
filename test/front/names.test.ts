import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Random } from "effect"
import { randomName, validateName } from "../../src/front/names.js"

describe("validateName", () => {
  it("accepts DNS labels and lowercases them", () => {
    expect(validateName("app")).toEqual(Either.right("app"))
    expect(validateName("My-App-2")).toEqual(Either.right("my-app-2"))
    expect(validateName("a")).toEqual(Either.right("a"))
    expect(validateName("0")).toEqual(Either.right("0"))
    expect(validateName("a".repeat(63))).toEqual(Either.right("a".repeat(63)))
    expect(validateName("a--b")).toEqual(Either.right("a--b"))
  })

  it("says what is wrong with anything else", () => {
    expect(validateName("")).toEqual(Either.left("name is empty"))
    expect(validateName("a".repeat(64))).toEqual(Either.left("name is longer than 63 characters"))
    expect(validateName("-app")).toEqual(Either.left("name may not start or end with -"))
    expect(validateName("app-")).toEqual(Either.left("name may not start or end with -"))
    for (const name of ["a.b", "a_b", "a b", "app/x", "caf\u00e9", "\u212Aelvin", "a\0", "%61"]) {
      expect(validateName(name), name).toEqual(Either.left("name may hold only letters a-z, digits and -"))
    }
  })

  it("keeps reserved names for the service, in any case", () => {
    for (const name of ["www", "api", "admin", "WWW", "Admin"]) {
      expect(validateName(name), name).toEqual(Either.left("name is reserved"))
    }
    expect(validateName("apis")).toEqual(Either.right("apis"))
  })
})

describe("randomName", () => {
  it.effect("is 10 characters of [a-z0-9] starting with a letter, and valid", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 200; i++) {
        const name = yield* randomName
        expect(name).toMatch(/^[a-z][a-z0-9]{9}$/)
        expect(validateName(name)).toEqual(Either.right(name))
      }
    }))

  it.effect("is deterministic for a seed and differs between draws", () =>
    Effect.gen(function*() {
      // A fresh generator each time: one Random.make is a stream that moves on as it is drawn from.
      const draw = Effect.suspend(() => Effect.all([randomName, randomName]).pipe(Effect.withRandom(Random.make("seed"))))
      const [first, second] = yield* draw
      expect(yield* draw).toEqual([first, second])
      expect(first).not.toBe(second)
    }))
})
