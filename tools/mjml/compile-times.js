// Dev-time only (bench/render.py): the official MJML compile of one file, timed inside Node so that
// Node's start-up is not counted. Prints {"first": ms, "ms": [...], "bytes": N} as JSON: the first
// compile in the process (cold), then one figure per run after `warmup` runs that let the JIT settle.
//   node tools/mjml/compile-times.js ISSUE.mjml [runs] [warmup]
"use strict";
const fs = require("fs");
const path = require("path");
const mjml2html = require(path.join(__dirname, "node_modules", "mjml"));

const [file, runs = "20", warmup = "3"] = process.argv.slice(2);
const source = fs.readFileSync(file, "utf8");
const ms = [];
let first = 0;
let html = "";
for (let i = 0; i < Number(warmup) + Number(runs); i++) {
  const start = process.hrtime.bigint();
  html = mjml2html(source, { validationLevel: "skip" }).html;
  const took = Number(process.hrtime.bigint() - start) / 1e6;
  if (i === 0) first = took;
  if (i >= Number(warmup)) ms.push(took);
}
console.log(JSON.stringify({ first, ms, bytes: Buffer.byteLength(html) }));
