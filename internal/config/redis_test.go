package config

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
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
