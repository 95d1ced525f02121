package config

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
)

func TestRedis_ConnOpt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want asynq.RedisConnOpt
	}{
		{name: "DefaultWhenEmpty", url: "", want: asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}},
		{name: "PasswordAndDB", url: "redis://:pw@h:6380/3", want: asynq.RedisClientOpt{Addr: "h:6380", Password: "pw", DB: 3}},
		{name: "Sentinel", url: "redis-sentinel://s1:26379,s2:26379?master=mymaster",
			want: asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}}},
		{name: "SentinelWithBothPasswordsAndDB", url: "redis-sentinel://:spw@s1:26379/2?master=m&password=mpw",
			want: asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379"}, SentinelPassword: "spw", Password: "mpw", DB: 2}},
		{name: "ClusterNodes", url: "redis-cluster://n1:7000,n2:7001,n3:7002",
			want: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}}},
		{name: "ClusterPasswordInUserinfo", url: "redis-cluster://u:pw@n1:7000?max_redirects=5",
			want: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000"}, Username: "u", Password: "pw", MaxRedirects: 5}},
		{name: "ClusterPasswordAsParameter", url: "redis-cluster://n1:7000,n2:7001/?password=pw",
			want: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7001"}, Password: "pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Redis{URL: tt.url}.ConnOpt()
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRedis_ErrorsNeverQuoteThePassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"redis://:hunter2@h:bad", "redis://:hunter2@h:6379/notadb", "http://:hunter2@h"} {
		_, err := Redis{URL: u}.ConnOpt()
		require.Error(t, err, u)
		require.NotContains(t, err.Error(), "hunter2", u)
		cfg := &Config{Redis: Redis{URL: u}}
		require.NotContains(t, cfg.ValidateWithoutCredentials().Error(), "hunter2", u)
	}
	require.Equal(t, "redis://:xxxxx@h:6379", Redis{URL: "redis://:hunter2@h:6379"}.String())
}

func TestRedis_UniversalClientReachesTheDatabase(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	c, err := Redis{URL: db.URL()}.UniversalClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "config-test", "v", 0).Err())
	got, err := db.Client.Get(ctx, "config-test").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
}

func TestRedis_ConnOptRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, wantMsg string
	}{
		{name: "SentinelWithoutMaster", url: "redis-sentinel://s1:26379", wantMsg: "needs ?master="},
		{name: "SentinelUnknownParameter", url: "redis-sentinel://s1:26379?master=m&db=2", wantMsg: `unknown parameter "db"`},
		{name: "SentinelBadDB", url: "redis-sentinel://s1:26379/x?master=m", wantMsg: "must be a database number"},
		{name: "ClusterWithoutHosts", url: "redis-cluster://", wantMsg: "at least one host:port"},
		{name: "ClusterHostWithoutPort", url: "redis-cluster://n1:7000,n2:", wantMsg: `address "n2:": want host:port`},
		{name: "ClusterDatabase", url: "redis-cluster://n1:7000/3", wantMsg: "only database 0"},
		{name: "ClusterBadRedirects", url: "redis-cluster://n1:7000?max_redirects=-1", wantMsg: "max_redirects"},
		{name: "ClusterUnknownParameter", url: "redis-cluster://n1:7000?master=m", wantMsg: `unknown parameter "master"`},
		{name: "UnknownScheme", url: "memcached://h:11211", wantMsg: "unsupported uri scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Redis{URL: tt.url}.ConnOpt()
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestRedis_UniversalClientMatchesTheScheme(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T, u string) redis.UniversalClient {
		t.Helper()
		c, err := Redis{URL: u}.UniversalClient()
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	t.Run("SentinelMakesAFailoverClient", func(t *testing.T) {
		t.Parallel()
		c, ok := open(t, "redis-sentinel://:spw@127.0.0.1:1/4?master=m&password=mpw").(*redis.Client)
		require.True(t, ok)
		got := c.Options()
		// go-redis names a failover client's address "FailoverClient" and
		// asks the Sentinels for the master on each dial.
		require.Equal(t, "FailoverClient", got.Addr)
		require.Equal(t, "mpw", got.Password)
		require.Equal(t, 4, got.DB)
	})
	t.Run("ClusterMakesAClusterClient", func(t *testing.T) {
		t.Parallel()
		c, ok := open(t, "redis-cluster://:pw@127.0.0.1:1,127.0.0.1:2").(*redis.ClusterClient)
		require.True(t, ok)
		got := c.Options()
		require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2"}, got.Addrs)
		require.Equal(t, "pw", got.Password)
	})
}

func TestRedactURL_HidesEveryPassword(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]string{
		"redis-cluster://:hunter2@n1:7000,n2:7001":        "redis-cluster://:xxxxx@n1:7000,n2:7001",
		"redis-cluster://n1:7000?password=hunter2":        "redis-cluster://n1:7000?password=xxxxx",
		"redis-sentinel://s:26379?master=m&password=hunt": "redis-sentinel://s:26379?master=m&password=xxxxx",
		"redis://app:hunter2@h:6379/1":                    "redis://xxxxx:xxxxx@h:6379/1",
		"redis://hunter2@h:6379":                          "redis://xxxxx@h:6379",
		"rediss://:hunter2@h:6380/0":                      "rediss://:xxxxx@h:6380/0",
		"redis-socket://:hunter2@/var/run/redis.sock":     "redis-socket://:xxxxx@/var/run/redis.sock",
		"https://proxy:hunter2@proxy.example/api":         "https://xxxxx:xxxxx@proxy.example/api",
		"https://proxy.example/?token=hunter2&region=eu":  "https://proxy.example/?region=eu&token=xxxxx",
		"redis://h:6379/0":                                "redis://h:6379/0",
	} {
		require.Equal(t, want, RedactURL(u))
		if _, err := (Redis{URL: u + "&bogus=1"}).ConnOpt(); err != nil {
			require.NotContains(t, err.Error(), "hunt", u)
		}
	}
}
