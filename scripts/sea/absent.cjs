// An optional dependency the single executable does without (ws's utf-8-validate, debug's
// supports-color): their users require them in a try and fall back when this throws.
"use strict"
throw new Error("not in the single executable")
