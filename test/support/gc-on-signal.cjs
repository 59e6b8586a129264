// Loaded into a real spore process by a test (NODE_OPTIONS="--expose-gc --require ..."): on
// SIGUSR2, collect garbage fully and print what memory is still held, so the test can tell a
// leak from garbage that V8 has not collected yet.
process.on("SIGUSR2", () => {
  global.gc()
  global.gc()
  const { heapUsed, rss } = process.memoryUsage()
  process.stderr.write(`memory after gc: heapUsed=${Math.round(heapUsed / 1024)} rss=${Math.round(rss / 1024)} (KiB)\n`)
})
