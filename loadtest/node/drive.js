'use strict'
// Drives Customer.io's Node SDK, @customerio/cdp-analytics-node, unchanged,
// against the Pipelines API at CIOQ_CDP_HOST: every call type (identify,
// track, page, screen, group, alias) and the semantic events cioq maps its
// Track operations to. It flushes, then prints one JSON line per call the
// SDK sent ({"type","event","userId","anonymousId","messageId","timestamp"},
// as the SDK put them on the wire) and a summary line on stderr, and exits
// 1 on any error: a failed delivery, an SDK error event, or a call whose
// callback never came.
//
// Environment:
//   CIOQ_CDP_HOST   base URL, e.g. http://127.0.0.1:8080 (required; plain
//                   http is fine: the SDK uses whatever scheme it is given)
//   CIOQ_CDP_KEY    the Pipelines API key (required)
//   CIOQ_CDP_PATH   the batch path (default /v1/batch; a path prefix of a
//                   proxy goes here, not in the host)
//   CIOQ_RUN_ID     makes user ids unique per run (default: the time)
//   CIOQ_BATCH_SIZE maxEventsInBatch (default 5, so a run spans batches)
const { Analytics } = require('@customerio/cdp-analytics-node')

function env(name, def) {
  const v = process.env[name]
  if (v === undefined || v === '') {
    if (def === undefined) {
      console.error(`drive: ${name} is required`)
      process.exit(2)
    }
    return def
  }
  return v
}

const host = env('CIOQ_CDP_HOST')
const writeKey = env('CIOQ_CDP_KEY')
const path = env('CIOQ_CDP_PATH', '/v1/batch')
const run = env('CIOQ_RUN_ID', String(Date.now()))
const batchSize = Number(env('CIOQ_BATCH_SIZE', '5'))

const analytics = new Analytics({
  writeKey,
  host,
  path,
  maxEventsInBatch: batchSize,
  flushInterval: 200,
  maxRetries: 3,
  httpRequestTimeout: 10000,
})

const errors = []
let requests = 0
analytics.on('error', (e) => errors.push(`sdk error ${e.code}: ${e.reason}`))
analytics.on('http_request', () => requests++)

const sent = []
let pending = 0
function done(label) {
  pending++
  return (err, ctx) => {
    pending--
    if (err) {
      errors.push(`${label}: ${err && err.message ? err.message : err}`)
      return
    }
    const e = ctx.event
    sent.push({
      type: e.type,
      event: e.event,
      userId: e.userId,
      anonymousId: e.anonymousId,
      messageId: e.messageId,
      timestamp: typeof e.timestamp === 'string' ? e.timestamp : new Date(e.timestamp).toISOString(),
    })
  }
}

const user = `node-${run}-u1`
const other = `node-${run}-u2`
const anon = `node-${run}-anon`
const device = { token: `tok-${run}`, type: 'ios' }
// A caller-chosen messageId and timestamp must arrive unchanged; the others
// are the SDK's own (node-next-<ms>-<uuid>, new Date()).
const fixedTime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678))

analytics.identify({ userId: user, traits: { email: `${user}@example.com`, plan: 'pro' }, messageId: `${run}-identify`, timestamp: fixedTime }, done('identify'))
analytics.identify({ anonymousId: anon, traits: { source: 'ad' } }, done('identify anonymous'))
analytics.track({ userId: user, event: 'Purchase', properties: { amount: 42, currency: 'EUR' } }, done('track'))
analytics.track({ anonymousId: anon, event: 'Viewed Pricing' }, done('track anonymous'))
analytics.page({ userId: user, name: 'Pricing', category: 'Docs', properties: { url: 'https://example.com/pricing' } }, done('page'))
analytics.screen({ userId: user, name: 'Cart', properties: { items: 2 } }, done('screen'))
analytics.group({ userId: user, groupId: `acme-${run}`, traits: { object_type_id: '1', relationshipAttributes: { role: 'admin' } } }, done('group'))
analytics.alias({ userId: user, previousId: anon }, done('alias'))
analytics.track({ userId: user, event: 'Device Created or Updated', context: { device }, properties: { app_version: '2.1' } }, done('device created'))
analytics.track({ userId: user, event: 'Device Deleted', context: { device } }, done('device deleted'))
analytics.track({ userId: user, event: 'Relationship Deleted', properties: { objectId: `acme-${run}`, objectTypeId: 1 } }, done('relationship deleted'))
analytics.track({ userId: other, event: 'User Suppressed' }, done('user suppressed'))
analytics.track({ userId: other, event: 'User Unsuppressed' }, done('user unsuppressed'))
analytics.track({ userId: other, event: 'User Deleted' }, done('user deleted'))

const calls = pending
analytics
  .closeAndFlush({ timeout: 30000 })
  .then(() => {
    // closeAndFlush resolves on its timeout too: every callback must have
    // come back.
    if (pending !== 0) {
      errors.push(`${pending} of ${calls} calls never got an answer`)
    }
    for (const s of sent) {
      process.stdout.write(JSON.stringify(s) + '\n')
    }
    console.error(`drive: ${sent.length} of ${calls} calls delivered in ${requests} requests to ${host}${path}`)
    if (errors.length > 0) {
      for (const e of errors) console.error(`drive: ${e}`)
      process.exit(1)
    }
  })
  .catch((err) => {
    console.error(`drive: ${err && err.stack ? err.stack : err}`)
    process.exit(1)
  })
