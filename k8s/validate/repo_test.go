package validate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoRoot is the cioq repository, two levels above this module.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(tb, err)
	_, err = os.Stat(filepath.Join(root, "internal", "metrics", "metrics.go"))
	require.NoError(tb, err, "the validate module must sit at k8s/validate in the cioq repository")
	return root
}

// goStringLits parses the non-test Go files of dir and calls fn with every
// constant declaration (name, string value) and every string literal
// (name "").
func goStrings(tb testing.TB, dir string, fn func(name, value string)) {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(tb, err)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(tb, err)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							if s, err := strconv.Unquote(lit.Value); err == nil {
								fn(id.Name, s)
							}
						}
					}
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, err := strconv.Unquote(n.Value); err == nil {
						fn("", s)
					}
				}
			}
			return true
		})
	}
}

// metricNames returns the metric names declared as Name* constants in
// internal/metrics (the catalogue of docs/metrics.md).
func metricNames(tb testing.TB) map[string]bool {
	tb.Helper()
	names := map[string]bool{}
	goStrings(tb, filepath.Join(repoRoot(tb), "internal", "metrics"), func(name, value string) {
		if strings.HasPrefix(name, "Name") && strings.HasPrefix(value, "cioq_") {
			names[value] = true
		}
	})
	require.NotEmpty(tb, names, "no Name* constants found in internal/metrics")
	return names
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// configEnvNames returns every env var cioq's configuration reads: the
// Env* constants and the env lists of the key table in internal/config.
func configEnvNames(tb testing.TB) map[string]bool {
	tb.Helper()
	names := map[string]bool{}
	goStrings(tb, filepath.Join(repoRoot(tb), "internal", "config"), func(name, value string) {
		if (name == "" || strings.HasPrefix(name, "Env")) && envName.MatchString(value) &&
			(strings.HasPrefix(value, "CIOQ_") || strings.HasPrefix(value, "CUSTOMERIO_") || strings.HasPrefix(value, "REDIS_")) {
			names[value] = true
		}
	})
	require.True(tb, names["CUSTOMERIO_TRACK_API_KEY"], "internal/config no longer names CUSTOMERIO_TRACK_API_KEY")
	return names
}

// runtimeEnv are env vars the containers set that the Go runtime reads, not
// cioq's configuration.
var runtimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true}

var routeLit = regexp.MustCompile(`^(?:(?:GET|HEAD) )?(/[A-Za-z0-9_./-]*)$`)

// routes returns the HTTP paths registered by the non-test Go files of the
// repository directory dir ("GET /healthz" and "/healthz" patterns).
func routes(tb testing.TB, dir string) []string {
	tb.Helper()
	set := map[string]bool{}
	full := filepath.Join(repoRoot(tb), dir)
	if _, err := os.Stat(full); err != nil {
		return nil
	}
	goStrings(tb, full, func(name, value string) {
		if m := routeLit.FindStringSubmatch(value); m != nil && name == "" {
			set[m[1]] = true
		}
	})
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

var promMetric = regexp.MustCompile(`\b((?:cioq|cio|asynq)_[a-zA-Z0-9_]+)`)

// unknownMetrics returns the cioq/asynq metric names used in a PromQL
// expression that internal/metrics does not declare (histogram series
// _bucket, _sum and _count count as their histogram). cio_* and asynq_* are
// never cioq's: the seed's names and asynq's x/metrics are not exported.
func unknownMetrics(known map[string]bool, expr string) []string {
	var bad []string
	for _, m := range promMetric.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		if known[name] {
			continue
		}
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suf)
		}
		if known[base] {
			continue
		}
		bad = append(bad, name)
	}
	return bad
}

// usedMetrics returns the cioq metric names an expression uses.
func usedMetrics(expr string) []string {
	var out []string
	for _, m := range promMetric.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestRepoFacts(t *testing.T) {
	t.Parallel()
	t.Run("MetricCatalogueHasTheScalingSignals", func(t *testing.T) {
		t.Parallel()
		names := metricNames(t)
		for _, n := range []string{"cioq_queue_depth", "cioq_desired_replicas"} {
			require.True(t, names[n], "internal/metrics lacks %s", n)
		}
	})
	t.Run("WorkerServesHealthAndReadiness", func(t *testing.T) {
		t.Parallel()
		got := routes(t, "worker")
		require.Contains(t, got, "/healthz")
		require.Contains(t, got, "/readyz")
		require.Contains(t, got, "/health/customerio")
	})
	t.Run("UnknownMetricsFindsStrangers", func(t *testing.T) {
		t.Parallel()
		known := map[string]bool{"cioq_requests_total": true, "cioq_request_duration_seconds": true}
		require.Empty(t, unknownMetrics(known, `sum(rate(cioq_requests_total{status="429"}[5m])) / histogram_quantile(0.9, rate(cioq_request_duration_seconds_bucket[5m]))`))
		require.Equal(t, []string{"cio_queue_depth", "asynq_queue_size", "cioq_nope"},
			unknownMetrics(known, `cio_queue_depth + asynq_queue_size + cioq_nope`))
	})
	t.Run("ConfigEnvNamesIncludeTheSeedVariables", func(t *testing.T) {
		t.Parallel()
		names := configEnvNames(t)
		for _, n := range []string{"CUSTOMERIO_SITE_ID", "CUSTOMERIO_TRACK_API_KEY", "CUSTOMERIO_REGION",
			"CUSTOMERIO_TRACK_URL", "CIOQ_REDIS_URL", "CIOQ_HTTP_ADDR", "CIOQ_RATE_LIMIT", "CIOQ_LOG_LEVEL"} {
			require.True(t, names[n], "internal/config does not read %s", n)
		}
		require.False(t, names["CIOQ_PREFIX"])
	})
}
