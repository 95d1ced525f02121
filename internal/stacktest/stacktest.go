package stacktest

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// The credentials New gives the fake and the worker's sender.
const (
	SiteID = "site-1"
	APIKey = "key-1-secret"
)

// Fake starts a fake Track API with opts, closed at cleanup.
func Fake(tb testing.TB, opts fake.Options) *fake.Server {
	tb.Helper()
	srv := fake.NewServer(opts)
	tb.Cleanup(srv.Close)
	return srv
}

// Sender returns a Track API client for baseURL (a fake's URL) with a site
// id, a key and a request timeout.
func Sender(tb testing.TB, baseURL, site, key string, timeout time.Duration) *track.Client {
	tb.Helper()
	c, err := track.NewClient(track.Config{SiteID: site, APIKey: key, BaseURL: baseURL, Timeout: timeout})
	require.NoError(tb, err)
	return c
}

// NewProducer returns a producer on cfg, closed at cleanup.
func NewProducer(tb testing.TB, cfg producer.Config) *producer.Producer {
	tb.Helper()
	p, err := producer.New(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// WorkerConfig is WorkerConfigOn db, with a go-redis client on db closed
// at cleanup.
func WorkerConfig(tb testing.TB, db *redistest.DB, ws ...worker.Workspace) worker.Config {
	tb.Helper()
	rdb := redis.NewClient(db.Options())
	tb.Cleanup(func() { _ = rdb.Close() })
	return WorkerConfigOn(db.ConnOpt(), rdb, ws...)
}

// WorkerConfigOn is the worker configuration the end-to-end tests share,
// on the Redis of conn and rdb, with the workspaces ws: concurrency 200 on
// one default-lane server and 10 on the critical lane; retries from 100 ms
// to 1 s; request and breaker timeouts 1 s; shutdown 5 s; delayed tasks
// checked every 100 ms. Tests change what they need.
func WorkerConfigOn(conn asynq.RedisConnOpt, rdb redis.UniversalClient, ws ...worker.Workspace) worker.Config {
	return worker.Config{
		Redis: conn, Client: rdb, Workspaces: ws,
		Concurrency: 200, Servers: 1, CriticalConcurrency: 10,
		Retry:           worker.RetryPolicy{Base: 100 * time.Millisecond, Cap: time.Second},
		ShutdownTimeout: 5 * time.Second, RequestTimeout: time.Second, BreakerTimeout: time.Second,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
	}
}

// StartWorker starts a worker on cfg, shut down at cleanup.
func StartWorker(tb testing.TB, cfg worker.Config) *worker.Worker {
	tb.Helper()
	w, err := worker.New(cfg)
	require.NoError(tb, err)
	require.NoError(tb, w.Start())
	tb.Cleanup(w.Shutdown)
	return w
}

// Options configure New.
type Options struct {
	// Fake configures the fake Track API. Nil Credentials means
	// {SiteID: APIKey}.
	Fake fake.Options
	// Producer configures the producer; Redis is set to the stack's
	// database.
	Producer producer.Config
}

// Stack is a Redis namespace, a fake Track API, a producer on that Redis
// and an asynq inspector; StartWorker adds a worker sending to the fake.
type Stack struct {
	DB        *redistest.DB
	Fake      *fake.Server
	Producer  *producer.Producer
	Inspector *asynq.Inspector
}

// New builds a stack; everything is closed at cleanup.
func New(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	db := redistest.New(tb)
	if opts.Fake.Credentials == nil {
		opts.Fake.Credentials = map[string]string{SiteID: APIKey}
	}
	srv := Fake(tb, opts.Fake)
	pc := opts.Producer
	pc.Redis = db.ConnOpt()
	p := NewProducer(tb, pc)
	insp := asynq.NewInspector(db.ConnOpt())
	tb.Cleanup(func() { _ = insp.Close() })
	return &Stack{DB: db, Fake: srv, Producer: p, Inspector: insp}
}

// WorkerConfig is DefaultWorkerConfig sending to the stack's fake.
func (s *Stack) WorkerConfig(tb testing.TB) worker.Config {
	tb.Helper()
	return DefaultWorkerConfig(tb, s.DB, s.Fake.URL)
}

// DefaultWorkerConfig is WorkerConfig with one workspace, the producer's
// default, sending to the Track API at baseURL as SiteID with a 1 s
// timeout: a budget of 100 requests/s (burst 10), batches of up to 100 ops
// or 20 ms.
func DefaultWorkerConfig(tb testing.TB, db *redistest.DB, baseURL string) worker.Config {
	tb.Helper()
	return WorkerConfig(tb, db, worker.Workspace{
		Name: producer.DefaultWorkspace, Sender: Sender(tb, baseURL, SiteID, APIKey, time.Second),
		Limit: ratelimit.Limit{Rate: 100, Burst: 10},
		Batch: worker.BatchConfig{MaxOps: 100, MaxWait: 20 * time.Millisecond},
	})
}

// StartWorker starts a worker on s.WorkerConfig changed by mod (nil: as
// is), shut down at cleanup.
func (s *Stack) StartWorker(tb testing.TB, mod func(*worker.Config)) *worker.Worker {
	tb.Helper()
	cfg := s.WorkerConfig(tb)
	if mod != nil {
		mod(&cfg)
	}
	return StartWorker(tb, cfg)
}
