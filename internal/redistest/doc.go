// Package redistest gives each test a Redis namespace of its own on a real
// Redis, and starts private redis-server processes for tests that kill or
// restart Redis. It is imported only by _test.go files.
//
// The Redis comes from CIOQ_TEST_REDIS_ADDR (set by `make test`, which starts
// its own redis-server with 256 databases unless REDIS_ADDR is set), else
// REDIS_ADDR. A missing Redis fails the test with a clear message; it is never
// skipped.
//
// Each test leases one database index (a lease key in DB 0, SET NX with a
// TTL). On a Redis that `make test` started (CIOQ_TEST_REDIS_OWNED=1) a leased
// database is flushed; on any other Redis only an empty database is leased,
// and cleanup deletes only the keys the test created in it. So a test never
// flushes a Redis it did not start.
package redistest
