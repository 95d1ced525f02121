package worker

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// DefaultProtocol is the RESP version of the connections the worker's asynq
// servers make: RESP2. asynq uses nothing of RESP3, and go-redis looks for
// RESP3 push notifications around every command it reads on a RESP3
// connection, which a CPU profile of the delivery benchmark put at 7% of the
// worker's CPU (docs/BENCHMARKS.md).
const DefaultProtocol = 2

// withProtocol returns opt, making its clients speak RESP protocol
// (asynq's own options always build RESP3 clients). A connection option of
// another type is returned as it is.
func withProtocol(opt asynq.RedisConnOpt, protocol int) asynq.RedisConnOpt {
	switch opt.(type) {
	case asynq.RedisClientOpt, asynq.RedisFailoverClientOpt, asynq.RedisClusterClientOpt:
		return protocolConn{opt: opt, protocol: protocol}
	}
	return opt
}

// protocolConn builds the client asynq's option would, with another RESP
// version.
type protocolConn struct {
	opt      asynq.RedisConnOpt
	protocol int
}

// MakeRedisClient mirrors asynq v0.26's MakeRedisClient of each option
// type, field for field, plus Protocol.
func (c protocolConn) MakeRedisClient() any {
	switch o := c.opt.(type) {
	case asynq.RedisClientOpt:
		return redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig, Protocol: c.protocol,
		})
	case asynq.RedisFailoverClientOpt:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs, SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig, Protocol: c.protocol,
		})
	case asynq.RedisClusterClientOpt:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, MaxRedirects: o.MaxRedirects, Username: o.Username, Password: o.Password,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			TLSConfig: o.TLSConfig, Protocol: c.protocol,
		})
	}
	return c.opt.MakeRedisClient()
}
