package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// CPUSeconds returns the CPU seconds (user + system) the Redis server behind
// c has used (INFO cpu): benchmarks take the difference around what they
// measure to report Redis CPU per op.
func CPUSeconds(tb testing.TB, c redis.UniversalClient) float64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatalf("redistest: INFO cpu: %v", err)
	}
	total := 0.0
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}
