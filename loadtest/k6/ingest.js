// The seed's k6 load test (shared/seeds/003: identify then track per
// iteration, ramping arrival rate 10 → 50 → 80/s → 10, thresholds p95 <
// 500 ms, p99 < 2 s, fewer than 50 errors), aimed at `cioq ingest` instead of
// Customer.io: the same v1 calls, the same Basic auth.
//
// Run (ingest on :8080 with the workspace's site id and key):
//   k6 run --env BASE_URL=http://127.0.0.1:8080 \
//     --env CUSTOMERIO_SITE_ID="$CUSTOMERIO_SITE_ID" \
//     --env CUSTOMERIO_TRACK_API_KEY="$CUSTOMERIO_TRACK_API_KEY" \
//     loadtest/k6/ingest.js
// BASE_URL is the ingest base URL (no /api/v1); default http://127.0.0.1:8080.
//
// Several workspaces: SITE_IDS and API_KEYS list them comma-separated, in
// the same order (ingest must know each site id). Each user goes to one
// workspace by FNV-1a hash of its id, as producer.HashRouter shards people:
//   k6 run --env SITE_IDS=site-a,site-b,site-c --env API_KEYS=key-a,key-b,key-c \
//     loadtest/k6/ingest.js
// Without them the single CUSTOMERIO_SITE_ID / CUSTOMERIO_TRACK_API_KEY pair
// is used.
import http from "k6/http";
import encoding from "k6/encoding";
import { check, sleep } from "k6";
import { Counter, Trend } from "k6/metrics";

const BASE_URL = `${(__ENV.BASE_URL || "http://127.0.0.1:8080").replace(/\/+$/, "")}/api/v1`;

// AUTHS holds one Basic credential per workspace.
const AUTHS = (() => {
  const list = (v) => (v || "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  const sites = list(__ENV.SITE_IDS || __ENV.CUSTOMERIO_SITE_ID);
  const keys = list(__ENV.API_KEYS || __ENV.CUSTOMERIO_TRACK_API_KEY);
  if (sites.length === 0 || sites.length !== keys.length) {
    throw new Error(`want as many API keys as site ids (got ${sites.length} site ids, ${keys.length} keys)`);
  }
  return sites.map((site, i) => encoding.b64encode(`${site}:${keys[i]}`));
})();

// authFor picks the workspace of a user: FNV-1a 32-bit of its id modulo the
// number of workspaces, the same choice producer.HashRouter makes.
function authFor(userId) {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return AUTHS[h % AUTHS.length];
}

const identifyLatency = new Trend("cio_identify_latency", true);
const trackLatency = new Trend("cio_track_latency", true);
const errors = new Counter("cio_errors");

export const options = {
  scenarios: {
    identify_load: {
      executor: "ramping-arrival-rate",
      startRate: 10,
      timeUnit: "1s",
      preAllocatedVUs: 20,
      maxVUs: 50,
      stages: [
        { duration: "30s", target: 50 }, // ramp to 50/s
        { duration: "60s", target: 80 }, // hold at 80/s (Customer.io's budget)
        { duration: "30s", target: 10 }, // cool down
      ],
    },
  },
  thresholds: {
    cio_identify_latency: ["p(95)<500", "p(99)<2000"],
    cio_track_latency: ["p(95)<500", "p(99)<2000"],
    cio_errors: ["count<50"],
  },
};

export default function () {
  const userId = `k6-load-${__VU}-${__ITER}`;
  const headers = {
    "Content-Type": "application/json",
    Authorization: `Basic ${authFor(userId)}`,
  };

  // Identify. The Idempotency-Key makes a retried request a no-op in cioq.
  const identifyRes = http.put(
    `${BASE_URL}/customers/${userId}`,
    JSON.stringify({
      email: `${userId}@loadtest.example.com`,
      _load_test: true,
      created_at: Math.floor(Date.now() / 1000),
    }),
    { headers: Object.assign({ "Idempotency-Key": `identify-${userId}` }, headers) }
  );
  identifyLatency.add(identifyRes.timings.duration);
  check(identifyRes, { "identify 200": (r) => r.status === 200 }) || errors.add(1);

  // Track event.
  const trackRes = http.post(
    `${BASE_URL}/customers/${userId}/events`,
    JSON.stringify({
      name: "load_test_event",
      data: { iteration: __ITER, vu: __VU },
    }),
    { headers: Object.assign({ "Idempotency-Key": `track-${userId}` }, headers) }
  );
  trackLatency.add(trackRes.timings.duration);
  check(trackRes, { "track 200": (r) => r.status === 200 }) || errors.add(1);

  sleep(0.1); // small delay between iterations
}

export function teardown() {
  console.log("Load test complete: the ops are queued in cioq (k6-load-* users).");
}
