// A webhook endpoint that checks Outpost signatures (Node.js, no dependencies).
// Run it with the destination's secret: WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.mjs
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.WEBHOOK_SECRET; // the whole secret, "whsec_" included

function signatureOk(body, header) {
  if (!header || !header.startsWith("v0=")) return false;
  const expected = Buffer.from(createHmac("sha256", secret).update(body).digest("hex"));
  // Two signatures (comma-separated) while a secret rotation is in its grace period.
  return header
    .slice(3)
    .split(",")
    .map((sig) => Buffer.from(sig.trim()))
    .some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected));
}

createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks); // raw bytes, before any JSON parsing
    if (!signatureOk(body, req.headers["x-outpost-signature"])) {
      res.writeHead(401).end(); // a failed attempt: never act on an unsigned request
      return;
    }
    const eventId = req.headers["x-outpost-event-id"]; // the same on every retry: dedupe on it
    const topic = req.headers["x-outpost-topic"];
    const data = JSON.parse(body.toString("utf8"));
    console.log(`verified ${eventId} ${topic} ${JSON.stringify(data)}`);
    res.writeHead(200).end();
  });
}).listen(Number(process.env.PORT ?? 8000), "127.0.0.1");
