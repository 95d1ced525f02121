package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Redis says where Redis is.
type Redis struct {
	// URL is a Redis URI as asynq.ParseRedisURI reads it: redis://,
	// rediss:// (TLS), redis-socket:// or redis-sentinel://, with an optional
	// password and DB number (redis://:pass@host:6379/2). Flag --redis, env
	// CIOQ_REDIS_URL, then REDIS_URL, then REDIS_ADDR (host:port). Empty
	// means DefaultRedisURL.
	URL string `mapstructure:"url" yaml:"url"`
}

// ConnOpt parses URL into asynq's connection options.
func (r Redis) ConnOpt() (asynq.RedisConnOpt, error) {
	u := r.URL
	if u == "" {
		u = DefaultRedisURL
	}
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		return nil, fmt.Errorf("config: redis url %s: %w", RedactURL(u), scrubURLError(err))
	}
	return opt, nil
}

// UniversalClient opens a go-redis client for URL (a *redis.Client, or a
// failover client for redis-sentinel://). The caller closes it.
func (r Redis) UniversalClient() (redis.UniversalClient, error) {
	opt, err := r.ConnOpt()
	if err != nil {
		return nil, err
	}
	c, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("config: redis url %s: not a go-redis client", r)
	}
	return c, nil
}

// String returns URL with its password replaced by "xxxxx".
func (r Redis) String() string { return RedactURL(r.URL) }

// MarshalYAML encodes the redacted URL.
func (r Redis) MarshalYAML() (any, error) {
	return map[string]string{"url": RedactURL(r.URL)}, nil
}

// RedactURL returns u with any password replaced by "xxxxx". A string that
// does not parse as a URL comes back as "(unparsable url)" when it could hold
// a password, so a malformed URL never leaks one into a message.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		if strings.Contains(u, "@") {
			return "(unparsable url)"
		}
		return u
	}
	return p.Redacted()
}

// redisAddrURL turns a REDIS_ADDR value (host:port) into a URL; a value that
// already has a scheme is taken as a URL.
func redisAddrURL(addr string) string {
	addr = strings.TrimSpace(addr)
	if strings.Contains(addr, "://") {
		return addr
	}
	return "redis://" + addr
}

// scrubURLError drops the URL that *url.Error repeats (it may hold a password).
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
