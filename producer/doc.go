// Package producer is what applications import to hand Customer.io
// operations to cioq. Each call validates the op against the Track API
// limits, stamps it, and queues it as one asynq task in Redis; cioq workers
// deliver it in v2 batches, with retries, rate limits and dedupe.
//
//	p, err := producer.New(producer.Config{
//		Redis:     asynq.RedisClientOpt{Addr: "127.0.0.1:6379"},
//		Workspace: "default",
//	})
//	if err != nil {
//		return err
//	}
//	defer p.Close(context.Background())
//
//	res, err := p.Identify(ctx, "u1", map[string]any{"plan": "pro"})
//	res, err = p.Track(ctx, "u1", "purchase", map[string]any{"amount": 10})
//	res, err = p.Suppress(ctx, "u1")
//
// Every call returns a Result with the op id. For an idempotency key, a
// timestamp, a workspace, or a person named by email or cio_id, build an Op:
//
//	res, err := p.Enqueue(ctx, producer.Op{
//		Op: track.Op{
//			Action:      track.ActionEvent,
//			Identifiers: &track.Identifiers{Email: "a@example.com"},
//			Name:        "purchase",
//			Attributes:  map[string]any{"order": "42"},
//		},
//		Key:       "order-42/paid", // the same key again is a no-op: res.Duplicate
//		Timestamp: paidAt,          // sent as `timestamp` on every delivery and retry
//	})
//
// # What Enqueue stamps
//
//   - The op id: Op.Key, else a new ULID. The task id is workspace + ":" + op
//     id, so a repeat of an op already queued is reported as
//     Result.Duplicate, not queued twice.
//   - The event id Customer.io sees (event, page, screen): a ULID. It is the
//     op id when that is a ULID, else derived from workspace and key, so a
//     repeat carries the same id and Customer.io drops it.
//   - `timestamp`: Op.Timestamp, else now. Separately the payload records
//     enqueued_at, cioq's clock, which tombstones compare.
//
// # Pipelines API calls
//
// An Op with a Call enqueues a call of Customer.io's Pipelines API instead
// (call.go); workers deliver it to the workspace's Pipelines API in
// /v1/batch requests of their own, with every guarantee a Track op gets:
//
//	res, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{
//		Type: cdp.TypeTrack, UserID: "u1", Event: "Purchase",
//		MessageID: "order-42-paid", // the dedupe key; also the op id
//	}})
//
// The call is stored as the Track op it means (cdp.Call.Action and
// Person): "User Deleted" is a delete on the critical lane with its
// tombstone, and a person's Track ops and calls keep one order. A call
// without a messageId gets one derived from the op id; `timestamp` is
// stamped as for Track ops. Config.PipelinesWorkspaces names the
// workspaces with a Pipelines API key; a call for another is refused with
// ErrNoPipelines.
//
// Suppress, unsuppress and delete go on the critical lane. Delete and
// suppress also write a tombstone for the person at enqueue, so a worker
// drops that person's identify and track ops enqueued earlier.
//
// # Errors
//
// An invalid op returns an error matching track.ErrInvalidOp (errors.As
// gives a *track.ValidationError naming the field) and queues nothing. When
// Redis does not answer within Config.Timeout (or the caller's deadline) the
// error matches ErrUnavailable; the outcome is then unknown and the op can
// be enqueued again with the same Key. Enqueue never panics and never blocks
// past that bound. After Close it returns ErrClosed.
//
// # Redis outages: the spool
//
// With Config.Spool.Dir set, Enqueue never waits on Redis for longer than
// Spool.Budget (5 ms): when Redis fails or is slow, the stamped op is
// appended to a bounded on-disk spool (CRC-framed segment files) and
// Result.Spooled is true. Until the spool is empty again every Enqueue goes
// straight to it, so ops keep their order; a background loop replays it
// into Redis, oldest first, with the same TaskIDs. Only a full spool
// returns an error (ErrSpoolFull). Close makes a last replay pass within
// its context and leaves the rest on disk for the next New on the same
// directory. SpoolStats and Config.Registerer report depth, bytes, replayed
// and dropped ops. docs/spool.md has the guarantees and the Kubernetes
// setup.
//
//	p, err := producer.New(producer.Config{
//		Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:6379"},
//		Spool: producer.SpoolConfig{Dir: "/var/lib/cioq/spool"},
//	})
//
// A Producer is safe for concurrent use.
package producer
