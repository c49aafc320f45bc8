// The platform's flow, through the TypeScript client @open-rpc/generator made from a live
// hookd's rpc.discover (run.sh builds it): the admin creates a merchant, a merchant user and
// a publisher; the merchant registers a webhook to a local receiver; the publisher (logged
// in, with a Bearer session) publishes; the receiver gets the event and the merchant reads
// the delivery as delivered. Every resource method is called directly by its name.
//
// Usage: node scenario.cjs CLIENT_DIR ENDPOINT ADMIN_NAME ADMIN_KEY
"use strict";
const http = require("http");
const path = require("path");
const assert = require("assert");

const [clientDir, endpoint, adminName, adminKey] = process.argv.slice(2);
const Hookd = require(path.join(clientDir, "build/index.js")).default;
const { Client, RequestManager, HTTPTransport } = require(path.join(clientDir, "node_modules/@open-rpc/client-js"));

/// The generated client, its transport carrying `Authorization: <auth>` (the generated
/// constructor takes no headers, so its RPC client is made again with them).
function client(auth) {
  const url = new URL(endpoint);
  const c = new Hookd({ transport: { type: "http", host: url.hostname, port: Number(url.port), path: url.pathname } });
  const headers = auth ? { Authorization: auth } : {};
  c.rpc = new Client(new RequestManager([new HTTPTransport(endpoint, { headers })]));
  return c;
}
const basic = (name, key) => "Basic " + Buffer.from(`${name}:${key}`).toString("base64");

/// A receiver that keeps what it is sent.
function receiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      got.push({ headers: req.headers, body });
      res.writeHead(200).end("ok");
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, got })));
}

async function until(what, deadlineMs, probe) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main() {
  const code = "ts-shop";
  const admin = client(basic(adminName, adminKey));
  assert.deepStrictEqual(await admin["merchant.create"]({ merchant_code: code, name: "TS Shop" }), {
    merchant_code: code,
    name: "TS Shop",
  });
  const shopUser = await admin["user.create"]({ username: "ts-shop-web", role: "merchant", merchant_code: code });
  const pubUser = await admin["user.create"]({ username: "ts-publisher", role: "publisher", merchant_codes: [code] });
  assert.strictEqual(pubUser.role, "publisher");

  const { server, got } = await receiver();
  const hookUrl = `http://127.0.0.1:${server.address().port}/hook`;
  const shop = client(basic(shopUser.username, shopUser.api_key));
  assert.strictEqual(await shop["webhook.create"]({ topics: "order:created", url: hookUrl }), true);
  const [hook] = await shop["webhook.list"]();
  assert.strictEqual(hook.url, hookUrl);

  // The publisher may not read webhooks (error 2 = -32002) ...
  await assert.rejects(client(basic(pubUser.username, pubUser.api_key))["webhook.list"](), (e) => e.code === -32002);
  // ... but publishes, with a session from login as a Bearer token.
  const session = await client(null).login(pubUser.username, pubUser.api_key);
  const publisher = client(`Bearer ${session}`);
  const published = await publisher["event.publish"]("order:created", { order_id: 42 }, { merchant_code: code });
  assert.strictEqual(published.payloads, 1);

  const delivered = await until("the delivery", 30000, async () => {
    const [d] = await shop["webhook.deliveries"](hook.webhook_id);
    return d && d.status === "success" ? d : null;
  });
  assert.strictEqual(delivered.topic, "order:created");
  assert.strictEqual(got.length, 1);
  const body = JSON.parse(got[0].body);
  assert.strictEqual(body.merchant_code, code);
  assert.strictEqual(body.message.order_id, 42);
  server.close();
  console.log(`generated TypeScript client: ok (delivery ${delivered.delivery_id} delivered)`);
}

main().catch((e) => {
  console.error("generated TypeScript client scenario failed:", e);
  process.exit(1);
});
