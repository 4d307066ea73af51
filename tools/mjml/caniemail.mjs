// Dev-time only (tests/test_render_caniemail.py): which HTML and CSS features of a rendered issue the
// e-mail clients we write for do not support, by the Can I email data that doiuse-email ships.
//   node tools/mjml/caniemail.mjs ISSUE.html [client,client,...]
// Prints one JSON object: {"clients": [...], "errors": [...], "warnings": [...], "notes": [...]}, each
// finding once as {"feature", "client", "count"} (count: how many times the issue uses it; notes also
// carry "text"). doiuse-email reports findings as sentences, one per use; they are taken apart and
// counted here so that the test can match a feature by its title.
// Exit status 0 whatever was found (the test judges); 2 for bad arguments or an unreadable file.
import fs from "node:fs";
import { doIUseEmail } from "doiuse-email";

// Gmail (desktop webmail and its iOS and Android apps) and Outlook on Windows: where most readers of a
// newsletter are, and Outlook's Word engine is the strictest of all.
const TARGET_CLIENTS = ["gmail.desktop-webmail", "gmail.ios", "gmail.android", "outlook.windows"];

const [file, clientsArgument] = process.argv.slice(2);
if (file === undefined) {
  console.error("usage: node tools/mjml/caniemail.mjs ISSUE.html [client,client,...]");
  process.exit(2);
}
let html;
try {
  html = fs.readFileSync(file, "utf8");
} catch (error) {
  console.error(`cannot read ${file}: ${error.message}`);
  process.exit(2);
}
const clients = clientsArgument ? clientsArgument.split(",") : TARGET_CLIENTS;

// "`feature` is not supported by `client`", "`feature` is only partially supported by `client`",
// "Note about `feature` support for `client`: text".
const FINDING = /^`(.+)` is (?:not|only partially) supported by `([^`]+)`$/;
const NOTE = /^Note about `(.+)` support for `([^`]+)`: (.*)$/s;

function parse(messages, pattern) {
  const found = new Map();
  for (const message of messages) {
    const match = pattern.exec(message);
    // A sentence of a shape this script does not know is kept whole, never dropped.
    const [, feature = null, client = null, text] = match ?? [];
    const finding = { feature, client, ...(match === null || text !== undefined ? { text: text ?? message } : {}) };
    const key = JSON.stringify(finding);
    const seen = found.get(key);
    if (seen) seen.count += 1;
    else found.set(key, { ...finding, count: 1 });
  }
  return [...found.values()];
}

const result = { clients, errors: [], warnings: [], notes: [] };
for (const client of clients) {
  const found = doIUseEmail(html, { emailClients: [client] });
  result.errors.push(...parse(found.errors ?? [], FINDING));
  result.warnings.push(...parse(found.warnings ?? [], FINDING));
  result.notes.push(...parse(found.notes ?? [], NOTE));
}
console.log(JSON.stringify(result, null, 1));
