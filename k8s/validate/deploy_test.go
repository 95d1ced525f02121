package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// deployPath is a file under deploy/.
func deployPath(tb testing.TB, parts ...string) string {
	return filepath.Join(append([]string{repoRoot(tb), "deploy"}, parts...)...)
}

// ruleFile is a Prometheus rule file, decoded strictly.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// githubAnchors returns the heading anchors of a Markdown file as GitHub
// renders them: lower case, punctuation dropped, spaces to hyphens.
func githubAnchors(tb testing.TB, path string) map[string]bool {
	tb.Helper()
	b, err := os.ReadFile(path)
	require.NoError(tb, err)
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	out := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		out[a] = true
	}
	return out
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(deployPath(t, "prometheus", "alerts.yml"))
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.UnmarshalStrict(b, &rf))
	known := metricNames(t)
	anchors := githubAnchors(t, filepath.Join(repoRoot(t), "docs", "operations.md"))
	alerts := map[string]string{}
	for _, g := range rf.Groups {
		require.NotEmpty(t, g.Rules, "group %s", g.Name)
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s: only alerts here", g.Name)
			require.Empty(t, unknownMetrics(known, r.Expr), "%s: metrics not in internal/metrics", r.Alert)
			require.NotEmpty(t, usedMetrics(r.Expr), "%s: queries no cioq metric", r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s: severity", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
			rb := r.Annotations["runbook_url"]
			doc, anchor, ok := strings.Cut(rb, "#")
			require.True(t, ok && doc == "docs/operations.md", "%s: runbook_url %q must point into docs/operations.md", r.Alert, rb)
			require.True(t, anchors[anchor], "%s: docs/operations.md has no section #%s", r.Alert, anchor)
			_, dup := alerts[r.Alert]
			require.False(t, dup, "alert %s twice", r.Alert)
			alerts[r.Alert] = r.Expr
		}
	}
	// What the issue asks to be alerted on, by the metric that shows it.
	for alert, metric := range map[string]string{
		"CioqBreakerOpen":           "cioq_breaker_state",
		"CioqRateLimited":           "cioq_requests_total",
		"CioqRateBelowBudget":       "cioq_rate_effective",
		"CioqQueueLatencyHigh":      "cioq_queue_latency_seconds",
		"CioqArchivedGrowing":       "cioq_queue_depth",
		"CioqDeadLettersGrowing":    "cioq_dead_letters_total",
		"CioqSpoolNotEmpty":         "cioq_producer_spool_ops",
		"CioqWorkspaceUnauthorized": "cioq_workspace_unauthorized",
	} {
		require.Contains(t, alerts, alert)
		require.Contains(t, usedMetrics(alerts[alert]), metric, alert)
	}
}

// promtool runs `promtool check ...` or skips the test when promtool is
// missing (Debian: apt-get install prometheus; `make deploy-validate`).
func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; `make deploy-validate` installs it): rule and config syntax not checked here")
	}
	cmd := exec.Command(bin, append([]string{"check"}, args...)...)
	cmd.Dir = deployPath(t, "prometheus")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err != nil && strings.Contains(out.String(), "field kubernetes_sd_configs not found") {
		t.Skip("this promtool is built without Kubernetes service discovery (Debian's is): " + strings.TrimSpace(out.String()))
	}
	require.NoError(t, err, "promtool check %s:\n%s", strings.Join(args, " "), out.String())
}

func TestPromtool(t *testing.T) {
	t.Parallel()
	t.Run("Rules", func(t *testing.T) { t.Parallel(); promtool(t, "rules", "alerts.yml") })
	t.Run("ComposeConfig", func(t *testing.T) { t.Parallel(); promtool(t, "config", "prometheus.yml") })
	t.Run("KubernetesConfig", func(t *testing.T) { t.Parallel(); promtool(t, "config", "prometheus-kubernetes.yml") })
}

func TestKubernetesScrapeKeepsAdapterLabels(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(deployPath(t, "prometheus", "prometheus-kubernetes.yml"))
	require.NoError(t, err)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				TargetLabel  string   `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	require.Len(t, cfg.ScrapeConfigs, 1)
	targets := map[string]string{}
	for _, r := range cfg.ScrapeConfigs[0].RelabelConfigs {
		if r.TargetLabel != "" && len(r.SourceLabels) == 1 {
			targets[r.TargetLabel] = r.SourceLabels[0]
		}
	}
	// k8s/prometheus-adapter maps exactly these labels to Kubernetes objects.
	require.Equal(t, "__meta_kubernetes_namespace", targets["namespace"])
	require.Equal(t, "__meta_kubernetes_pod_name", targets["pod"])
}

// panel is the part of a Grafana panel the checks read.
type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *struct{ UID string }    `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(deployPath(t, "grafana", "dashboards", "cioq.json"))
	require.NoError(t, err)
	var dash struct {
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	require.NoError(t, dec.Decode(&dash), "dashboard JSON")
	require.NotEmpty(t, dash.UID)
	require.NotEmpty(t, dash.Title)
	require.GreaterOrEqual(t, dash.SchemaVersion, 36, "a schema Grafana 10+ reads without migration")

	ds, err := os.ReadFile(deployPath(t, "grafana", "provisioning", "datasources", "prometheus.yml"))
	require.NoError(t, err)
	var prov struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault, Editable          bool
		} `json:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(ds, &prov))
	require.Len(t, prov.Datasources, 1)
	uid := prov.Datasources[0].UID

	known := metricNames(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			require.NotZero(t, p.ID, "panel %q: id", p.Title)
			require.False(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			require.NotEmpty(t, p.Title, "panel %d: title", p.ID)
			require.True(t, p.GridPos.W > 0 && p.GridPos.X+p.GridPos.W <= 24, "panel %q: gridPos %+v", p.Title, p.GridPos)
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			require.NotNil(t, p.Datasource, "panel %q: datasource", p.Title)
			require.Equal(t, uid, p.Datasource.UID, "panel %q: datasource uid", p.Title)
			require.NotEmpty(t, p.Targets, "panel %q: no query", p.Title)
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q target %s", p.Title, tg.RefID)
				require.Empty(t, unknownMetrics(known, tg.Expr), "panel %q: metrics not in internal/metrics", p.Title)
				require.NotEmpty(t, usedMetrics(tg.Expr), "panel %q: queries no cioq metric", p.Title)
				require.Equal(t, strings.Count(tg.Expr, "("), strings.Count(tg.Expr, ")"), "panel %q: unbalanced parentheses", p.Title)
				for _, m := range usedMetrics(tg.Expr) {
					used[m] = true
				}
			}
		}
	}
	walk(dash.Panels)
	for _, m := range []string{"cioq_queue_depth", "cioq_desired_replicas", "cioq_requests_total", "cioq_breaker_state", "cioq_producer_spool_ops", "cioq_rate_effective", "cioq_rate_budget"} {
		require.True(t, used[m], "the dashboard shows no %s", m)
	}
}

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		ReadOnly    bool              `json:"read_only"`
		User        string            `json:"user"`
		CapDrop     []string          `json:"cap_drop"`
		Volumes     []string          `json:"volumes"`
		Build       *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
	} `json:"services"`
}

func TestCompose(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(deployPath(t, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c)) // sigs.k8s.io/yaml resolves the x-cioq anchors
	for _, s := range []string{"redis", "worker", "ingest", "fakecio", "prometheus", "grafana"} {
		require.Contains(t, c.Services, s)
	}
	redis := strings.Join(c.Services["redis"].Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
		require.Contains(t, redis, want)
	}
	known := configEnvNames(t)
	for _, name := range []string{"worker", "ingest", "fakecio"} {
		s := c.Services[name]
		require.Equal(t, name, s.Command[0], "%s runs `cioq %s`", name, name)
		require.True(t, s.ReadOnly, "%s: read_only", name)
		require.Equal(t, "65532:65532", s.User, "%s: distroless nonroot", name)
		require.Equal(t, []string{"ALL"}, s.CapDrop, name)
		require.NotNil(t, s.Build, name)
		require.Equal(t, "deploy/Dockerfile", s.Build.Dockerfile)
		_, err := os.Stat(filepath.Join(deployPath(t), s.Build.Context, s.Build.Dockerfile))
		require.NoError(t, err, "%s: build context", name)
		for k := range s.Environment {
			require.True(t, known[k], "%s: env %s is not a cioq config env var", name, k)
		}
		require.Equal(t, "http://fakecio:8080", s.Environment["CUSTOMERIO_TRACK_URL"], "%s: compose never talks to Customer.io", name)
		require.Equal(t, "http://fakecio:8080", s.Environment["CUSTOMERIO_CDP_URL"], "%s: nor to its Pipelines API", name)
	}
	// Files mounted from deploy/ exist.
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "./") {
				_, err := os.Stat(filepath.Join(deployPath(t), src))
				require.NoError(t, err, "%s mounts %s", name, src)
			}
		}
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(deployPath(t, "Dockerfile"))
	require.NoError(t, err)
	var froms []string
	var user string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "FROM" {
			froms = append(froms, f[1])
		}
		if len(f) >= 2 && f[0] == "USER" {
			user = f[1]
		}
	}
	goVersion := func() (string, error) {
		mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
		if err != nil {
			return "", err
		}
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
		if m == nil {
			return "", errors.New("no go directive")
		}
		return string(m[1]), nil
	}
	v, err := goVersion()
	require.NoError(t, err)
	requireNoDiff(t, []string{"golang:" + v, "gcr.io/distroless/static:nonroot"}, froms)
	require.Equal(t, "nonroot:nonroot", user)
	require.Contains(t, string(b), "CGO_ENABLED=0")
	require.Contains(t, string(b), "./cmd/cioq")
}
