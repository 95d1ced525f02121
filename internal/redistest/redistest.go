package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// leaseTTL bounds how long a crashed test keeps a database leased.
const leaseTTL = 30 * time.Minute

// DB is one leased Redis database.
type DB struct {
	// Addr is host:port of the Redis server.
	Addr string
	// Index is the database number leased for this test.
	Index int
	// Client is connected to that database. It is closed at cleanup.
	Client *redis.Client
}

// ConnOpt returns asynq connection options for the leased database.
func (d *DB) ConnOpt() asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: d.Addr, DB: d.Index}
}

// URL returns redis://addr/index.
func (d *DB) URL() string { return fmt.Sprintf("redis://%s/%d", d.Addr, d.Index) }

// Options returns go-redis options for the leased database.
func (d *DB) Options() *redis.Options { return &redis.Options{Addr: d.Addr, DB: d.Index} }

// Addr returns the address of the test Redis or fails the test.
func Addr(tb testing.TB) string {
	tb.Helper()
	if a := os.Getenv("CIOQ_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	tb.Fatal("redistest: no Redis for integration tests: run `make test` (it starts one), " +
		"or set REDIS_ADDR=host:port")
	return ""
}

func owned() bool { return os.Getenv("CIOQ_TEST_REDIS_OWNED") == "1" }

// New leases a database on the test Redis for tb and releases it at cleanup.
func New(tb testing.TB) *DB {
	tb.Helper()
	addr := Addr(tb)
	return lease(tb, addr, owned())
}

// NewOn leases a database on a Redis this test started itself (see
// StartServer); such a database may be flushed.
func NewOn(tb testing.TB, s *Server) *DB {
	tb.Helper()
	return lease(tb, s.Addr, true)
}

func lease(tb testing.TB, addr string, mayFlush bool) *DB {
	tb.Helper()
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		tb.Fatalf("redistest: Redis at %s does not answer: %v (run `make test`, or set REDIS_ADDR)", addr, err)
	}
	n := 16
	if v, err := admin.ConfigGet(ctx, "databases").Result(); err == nil {
		if s, ok := v["databases"]; ok {
			if k, err := strconv.Atoi(s); err == nil && k > 1 {
				n = k
			}
		}
	}
	token := randomToken()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for i := 1; i < n; i++ {
			key := "cioq:test:lease:" + strconv.Itoa(i)
			ok, err := admin.SetNX(ctx, key, token, leaseTTL).Result()
			if err != nil {
				tb.Fatalf("redistest: lease: %v", err)
			}
			if !ok {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: addr, DB: i})
			size, err := c.DBSize(ctx).Result()
			if err == nil && size > 0 && mayFlush {
				err = c.FlushDB(ctx).Err()
				size = 0
			}
			if err != nil || size > 0 {
				// Not ours to clear: leave it alone and release the lease.
				_ = c.Close()
				release(admin, key, token)
				continue
			}
			db := &DB{Addr: addr, Index: i, Client: c}
			tb.Cleanup(func() {
				clearDB(c)
				_ = c.Close()
				a := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
				release(a, key, token)
				_ = a.Close()
			})
			return db
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: no free empty database on %s after 2m (of %d)", addr, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clearDB deletes every key of a database that was empty when it was leased:
// all of them were created by the test.
func clearDB(c *redis.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	batch := make([]string, 0, 1000)
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func release(admin *redis.Client, key, token string) {
	_ = releaseScript.Run(context.Background(), admin, []string{key}, token).Err()
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Prefix returns a key prefix unique to this test ("cioq:t<random>:"), for
// code that takes a CIOQ_KEY_PREFIX.
func Prefix(tb testing.TB) string {
	tb.Helper()
	return "cioq:t" + randomToken() + ":"
}
