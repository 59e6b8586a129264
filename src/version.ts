/** package.json's version, put in by the bundler (scripts/bundle.mjs) and by vitest.config.ts. */
declare const SPORE_VERSION: string | undefined

export const VERSION: string = typeof SPORE_VERSION === "string" ? SPORE_VERSION : "dev"
