package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// URL schemes cioq reads beyond asynq.ParseRedisURI's redis://, rediss://
// and redis-socket://.
const (
	// SchemeSentinel names a Sentinel-managed master:
	// redis-sentinel://[:sentinelpass@]s1:26379,s2:26379[/db]?master=name[&password=masterpass].
	SchemeSentinel = "redis-sentinel"
	// SchemeCluster names a Redis Cluster by some of its nodes:
	// redis-cluster://[[user]:pass@]n1:7000,n2:7001[?password=pass&max_redirects=8].
	SchemeCluster = "redis-cluster"
)

// Redis says where Redis is.
type Redis struct {
	// URL is a Redis URI: redis://[:pass@]host:port[/db], rediss:// (TLS)
	// and redis-socket://path as asynq.ParseRedisURI reads them;
	// redis-sentinel://s1:26379,s2:26379[/db]?master=name (the userinfo
	// password is the Sentinels', a password query parameter the master's);
	// redis-cluster://[:pass@]n1:7000,n2:7001 (any reachable nodes of a Redis
	// Cluster; no database number). Flag --redis, env CIOQ_REDIS_URL, then
	// REDIS_URL, then REDIS_ADDR (host:port). Empty means DefaultRedisURL.
	URL string `mapstructure:"url" yaml:"url"`
}

// ConnOpt parses URL into asynq's connection options: asynq.RedisClientOpt,
// asynq.RedisFailoverClientOpt (redis-sentinel://) or
// asynq.RedisClusterClientOpt (redis-cluster://).
func (r Redis) ConnOpt() (asynq.RedisConnOpt, error) {
	u := cmp.Or(r.URL, DefaultRedisURL)
	opt, err := parseRedisURL(u)
	if err != nil {
		return nil, fmt.Errorf("config: redis url %s: %w", RedactURL(u), scrubURLError(err))
	}
	return opt, nil
}

func parseRedisURL(u string) (asynq.RedisConnOpt, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	switch p.Scheme {
	case SchemeCluster:
		return parseClusterURL(p)
	case SchemeSentinel:
		return parseSentinelURL(p)
	}
	return asynq.ParseRedisURI(u)
}

// parseClusterURL reads
// redis-cluster://[[user]:pass@]n1:p1,n2:p2[?password=pass&max_redirects=N].
func parseClusterURL(p *url.URL) (asynq.RedisConnOpt, error) {
	addrs, err := hostList(p.Host)
	if err != nil {
		return nil, err
	}
	if strings.Trim(p.Path, "/") != "" {
		return nil, errors.New("a Redis Cluster has only database 0: drop the /db path")
	}
	opt := asynq.RedisClusterClientOpt{Addrs: addrs}
	if p.User != nil {
		opt.Username = p.User.Username()
		opt.Password, _ = p.User.Password()
	}
	q := p.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		switch k {
		case "password":
			opt.Password = v[0]
		case "max_redirects":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("max_redirects %q: want a whole number >= 0", v[0])
			}
			opt.MaxRedirects = n
		default:
			return nil, fmt.Errorf("unknown parameter %q (redis-cluster:// takes password and max_redirects)", k)
		}
	}
	return opt, nil
}

// parseSentinelURL reads
// redis-sentinel://[:sentinelpass@]s1:p1,s2:p2[/db]?master=name[&password=masterpass].
// asynq.ParseRedisURI reads the same form but takes no database, no master
// password and no check that master is set.
func parseSentinelURL(p *url.URL) (asynq.RedisConnOpt, error) {
	addrs, err := hostList(p.Host)
	if err != nil {
		return nil, err
	}
	opt := asynq.RedisFailoverClientOpt{SentinelAddrs: addrs}
	if p.User != nil {
		opt.SentinelUsername = p.User.Username()
		opt.SentinelPassword, _ = p.User.Password()
	}
	if db := strings.Trim(p.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, errors.New("the path must be a database number such as /0 or /1")
		}
		opt.DB = n
	}
	q := p.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		switch k {
		case "master":
			opt.MasterName = v[0]
		case "password":
			opt.Password = v[0]
		default:
			return nil, fmt.Errorf("unknown parameter %q (redis-sentinel:// takes master and password)", k)
		}
	}
	if opt.MasterName == "" {
		return nil, errors.New("redis-sentinel:// needs ?master=<name of the monitored master>")
	}
	return opt, nil
}

// hostList splits "h1:p1,h2:p2" and checks each is host:port.
func hostList(hosts string) ([]string, error) {
	var addrs []string
	for _, a := range strings.Split(hosts, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if h, port, err := net.SplitHostPort(a); err != nil || h == "" || port == "" {
			return nil, fmt.Errorf("address %q: want host:port", a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, errors.New("want at least one host:port")
	}
	return addrs, nil
}

// UniversalClient opens a go-redis client for URL: a *redis.Client, a
// Sentinel failover *redis.Client for redis-sentinel://, or a
// *redis.ClusterClient for redis-cluster://. The caller closes it.
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

// String returns URL with its userinfo and credential query parameters
// redacted (RedactURL).
func (r Redis) String() string { return RedactURL(r.URL) }

// MarshalYAML encodes the redacted URL.
func (r Redis) MarshalYAML() (any, error) {
	return map[string]string{"url": RedactURL(r.URL)}, nil
}

// RedactURL returns u with its userinfo (user name and password) and any
// credential-like query parameter (password, token, secret, key, auth,
// signature, ...) replaced by "xxxxx": "redis://:pw@h" becomes
// "redis://:xxxxx@h", "https://user:pw@h" "https://xxxxx:xxxxx@h", and
// "https://token@h" "https://xxxxx@h". It serves every URL scheme cioq
// reads (redis, rediss, redis-socket, redis-sentinel, redis-cluster, http,
// https). A string that does not parse as a URL comes back as
// "(unparsable url)" when it could hold a credential, so a malformed URL
// never leaks one into a message.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		if strings.Contains(u, "@") || sensitiveQuery(u) {
			return "(unparsable url)"
		}
		return u
	}
	if p.User != nil {
		user := p.User.Username()
		if user != "" {
			user = redactedValue
		}
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(user, redactedValue)
		} else {
			p.User = url.User(user)
		}
	}
	if p.RawQuery != "" {
		q := p.Query()
		changed := false
		for k := range q {
			if sensitiveQuery(k) {
				q[k] = []string{redactedValue}
				changed = true
			}
		}
		if changed {
			p.RawQuery = q.Encode()
		}
	}
	// url.URL.String escapes nothing in "xxxxx"; the userinfo is rebuilt.
	return p.String()
}

// redactedValue replaces a credential in a URL.
const redactedValue = "xxxxx"

// sensitiveQuery reports whether a query parameter name (or a whole string)
// looks like it names a credential.
func sensitiveQuery(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"pass", "pwd", "token", "secret", "key", "auth", "sig", "cred"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
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
