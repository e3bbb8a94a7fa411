// Parse Mermaid files with mermaid's own parser, headless: jsdom stands in for the browser
// (mermaid sanitises labels with DOMPurify, which needs a window), so no browser is needed.
//
//   node .renderers/parse.mjs FILE...   prints "ok FILE TYPE" or "error FILE: MESSAGE" per
//                                       file; exits 1 if any file does not parse
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let failed = 0;
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, "utf8"));
    console.log(`ok ${file} ${result.diagramType}`);
  } catch (error) {
    failed += 1;
    const message = String(error?.message ?? error).split("\n").join(" ");
    console.log(`error ${file}: ${message}`);
  }
}
process.exit(failed ? 1 : 0);
