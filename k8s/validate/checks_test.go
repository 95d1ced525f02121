package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// cioqImage is the image every cioq container runs (any tag).
const cioqImage = "cioq/cioq"

// externalSecrets are the Secrets production expects to exist (created from
// a secret store, never rendered), with the keys cioq reads from them.
var externalSecrets = map[string][]string{
	"cioq-customerio": {"CUSTOMERIO_SITE_ID", "CUSTOMERIO_TRACK_API_KEY", "CUSTOMERIO_CDP_API_KEY"},
	"cioq-redis":      {"CIOQ_REDIS_URL"},
	"cioq-monitoring": {"CIOQ_MONITORING_USERNAME", "CIOQ_MONITORING_PASSWORD"},
}

// overlays returns the rendered overlays and base (not the adapter rules).
func workloads(t *testing.T) map[string]*rendered {
	t.Helper()
	all := renderAll(t)
	delete(all, "prometheus-adapter")
	return all
}

// configMapByName finds a rendered ConfigMap by its name before the hash.
func (r *rendered) configMap(name string) *corev1.ConfigMap {
	for _, c := range r.ConfigMaps {
		if c.Name == name || hashSuffix.ReplaceAllString(c.Name, "") == name {
			return c
		}
	}
	return nil
}

func (r *rendered) secret(name string) *corev1.Secret {
	for _, s := range r.Secrets {
		if s.Name == name || hashSuffix.ReplaceAllString(s.Name, "") == name {
			return s
		}
	}
	return nil
}

func (r *rendered) deployment(name string) *appsv1.Deployment {
	for _, d := range r.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func isCioq(c corev1.Container) bool { return strings.HasPrefix(c.Image, cioqImage+":") }

func TestContainersAreLockedDown(t *testing.T) {
	t.Parallel()
	for dir, r := range workloads(t) {
		for _, d := range r.Deployments {
			t.Run(dir+"/"+d.Name, func(t *testing.T) {
				pod := d.Spec.Template.Spec
				require.NotNil(t, pod.SecurityContext, "pod securityContext")
				require.Equal(t, ptr.To(true), pod.SecurityContext.RunAsNonRoot, "pod runAsNonRoot")
				require.NotNil(t, pod.SecurityContext.RunAsUser, "pod runAsUser (runAsNonRoot needs a numeric user)")
				require.NotZero(t, *pod.SecurityContext.RunAsUser, "pod runAsUser must not be root")
				require.NotNil(t, pod.SecurityContext.SeccompProfile, "seccompProfile")
				require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)
				require.Equal(t, ptr.To(false), pod.AutomountServiceAccountToken, "no API token is needed")
				require.NotEmpty(t, pod.ServiceAccountName)
				require.True(t, r.objectsByIdent["ServiceAccount/"+pod.ServiceAccountName], "ServiceAccount %s not rendered", pod.ServiceAccountName)
				require.Empty(t, pod.InitContainers)
				for _, c := range pod.Containers {
					sc := c.SecurityContext
					require.NotNil(t, sc, "%s: securityContext", c.Name)
					require.Equal(t, ptr.To(true), sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", c.Name)
					require.Equal(t, ptr.To(false), sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", c.Name)
					require.Equal(t, ptr.To(true), sc.RunAsNonRoot, "%s: runAsNonRoot", c.Name)
					require.Nil(t, sc.Privileged, "%s: privileged", c.Name)
					require.Nil(t, sc.RunAsUser, "%s: runAsUser comes from the pod", c.Name)
					require.NotNil(t, sc.Capabilities, "%s: capabilities", c.Name)
					require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s: drop ALL", c.Name)
					require.Empty(t, sc.Capabilities.Add, "%s: no capabilities added", c.Name)

					req, lim := c.Resources.Requests, c.Resources.Limits
					require.False(t, req.Cpu().IsZero(), "%s: cpu request (the seed HPA's CPU target needs one)", c.Name)
					require.False(t, req.Memory().IsZero(), "%s: memory request", c.Name)
					require.False(t, lim.Memory().IsZero(), "%s: memory limit", c.Name)
					require.LessOrEqual(t, req.Memory().Cmp(*lim.Memory()), 0, "%s: memory request above its limit", c.Name)
				}
			})
		}
	}
}

func TestProbesHitServedEndpoints(t *testing.T) {
	t.Parallel()
	served := map[string][]string{"worker": routes(t, "worker"), "ingest": routes(t, "ingest")}
	if len(served["ingest"]) == 0 {
		// Not written yet: every cioq server command serves the same health
		// endpoints (DESIGN: one listener serves its API plus /healthz,
		// /readyz, /metrics), so hold ingest to the worker's.
		t.Log("ingest/ has no routes yet: checking the ingest probes against the worker's endpoints")
		served["ingest"] = served["worker"]
	}
	for dir, r := range workloads(t) {
		for _, d := range r.Deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				t.Run(dir+"/"+d.Name+"/"+c.Name, func(t *testing.T) {
					ports := map[string]int32{}
					for _, p := range c.Ports {
						ports[p.Name] = p.ContainerPort
					}
					probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
					for kind, p := range probes {
						if p == nil {
							require.NotEqual(t, "liveness", kind, "no liveness probe")
							require.NotEqual(t, "readiness", kind, "no readiness probe")
							continue
						}
						port := probePort(p)
						if port.Type == 1 { // named
							require.Contains(t, ports, port.StrVal, "%s probe names port %q the container does not declare", kind, port.StrVal)
						}
						if p.HTTPGet != nil {
							require.NotEqual(t, "/health/customerio", p.HTTPGet.Path,
								"%s probe on /health/customerio: a Customer.io outage would restart every pod", kind)
						}
					}
					if !isCioq(c) {
						return
					}
					cmd := c.Args[0]
					if cmd == "fakecio" {
						return // the fake serves only Track API paths: socket probes
					}
					endpoints, ok := served[cmd]
					require.True(t, ok, "no endpoint list for `cioq %s`", cmd)
					require.NotNil(t, c.LivenessProbe.HTTPGet, "liveness must be an HTTP probe")
					require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
					require.NotNil(t, c.ReadinessProbe.HTTPGet, "readiness must be an HTTP probe")
					require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
					for kind, p := range probes {
						if p != nil && p.HTTPGet != nil {
							require.Contains(t, endpoints, p.HTTPGet.Path, "%s probe path not served by `cioq %s`", kind, cmd)
						}
					}
					require.Contains(t, c.Args, "--addr")
					addr := c.Args[slices.Index(c.Args, "--addr")+1]
					require.Equal(t, fmt.Sprintf(":%d", ports["http"]), addr, "--addr and the http port disagree")
				})
			}
		}
	}
}

// probePort returns the port a probe targets.
func probePort(p *corev1.Probe) (port struct {
	Type   int
	StrVal string
}) {
	switch {
	case p.HTTPGet != nil:
		port.Type, port.StrVal = int(p.HTTPGet.Port.Type), p.HTTPGet.Port.StrVal
	case p.TCPSocket != nil:
		port.Type, port.StrVal = int(p.TCPSocket.Port.Type), p.TCPSocket.Port.StrVal
	}
	return port
}

func TestEnvAndSecretsMatchTheConfig(t *testing.T) {
	t.Parallel()
	known := configEnvNames(t)
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "configuration.md"))
	require.NoError(t, err)
	documented := func(name string) bool { return strings.Contains(string(doc), "`"+name+"`") }
	const apiKey = "CUSTOMERIO_TRACK_API_KEY"

	for dir, r := range workloads(t) {
		t.Run(dir, func(t *testing.T) {
			for _, cm := range r.ConfigMaps {
				for k := range cm.Data {
					require.True(t, known[k], "ConfigMap %s: %s is not a cioq config env var", cm.Name, k)
					require.True(t, documented(k), "ConfigMap %s: %s is not in docs/configuration.md", cm.Name, k)
					require.NotContains(t, k, "API_KEY", "ConfigMap %s holds an API key", cm.Name)
				}
			}
			for _, s := range r.Secrets {
				for k := range s.Data {
					require.True(t, known[k], "Secret %s: key %s is not a cioq config env var", s.Name, k)
				}
			}
			for _, d := range r.Deployments {
				for _, c := range d.Spec.Template.Spec.Containers {
					if !isCioq(c) {
						continue
					}
					sawKey := false
					for _, ef := range c.EnvFrom {
						require.Nil(t, ef.SecretRef, "%s/%s: envFrom a whole Secret hides which keys it reads", d.Name, c.Name)
						require.NotNil(t, ef.ConfigMapRef)
						require.NotNil(t, r.configMap(ef.ConfigMapRef.Name), "%s: ConfigMap %s not rendered", d.Name, ef.ConfigMapRef.Name)
					}
					for _, e := range c.Env {
						if runtimeEnv[e.Name] {
							continue
						}
						require.True(t, known[e.Name], "%s/%s: env %s is not a cioq config env var", d.Name, c.Name, e.Name)
						require.True(t, documented(e.Name), "%s/%s: env %s is not in docs/configuration.md", d.Name, c.Name, e.Name)
						if e.Name == apiKey {
							sawKey = true
							require.Empty(t, e.Value, "%s: the API key must come from a Secret, not a literal", d.Name)
							require.NotNil(t, e.ValueFrom, "%s: the API key must come from a Secret", d.Name)
							require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s: the API key must come from a Secret", d.Name)
						}
						if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
							continue
						}
						ref := e.ValueFrom.SecretKeyRef
						require.Equal(t, e.Name, ref.Key, "%s: env %s reads Secret key %s: keep the names equal", d.Name, e.Name, ref.Key)
						if s := r.secret(ref.Name); s != nil {
							require.Contains(t, s.Data, ref.Key, "%s: Secret %s has no key %s", d.Name, ref.Name, ref.Key)
							continue
						}
						keys, ok := externalSecrets[hashSuffix.ReplaceAllString(ref.Name, "")]
						require.True(t, ok, "%s: Secret %s is neither rendered nor a documented external Secret", d.Name, ref.Name)
						require.Contains(t, keys, ref.Key)
					}
					if slices.Contains([]string{"worker", "ingest"}, c.Args[0]) {
						require.True(t, sawKey, "%s: `cioq %s` needs %s", d.Name, c.Args[0], apiKey)
					}
				}
			}
		})
	}
	t.Run("ExternalSecretKeysAreConfigNames", func(t *testing.T) {
		t.Parallel()
		for name, keys := range externalSecrets {
			for _, k := range keys {
				require.True(t, known[k], "Secret %s: %s", name, k)
			}
		}
	})
}

func TestSelectorsFindTheirPods(t *testing.T) {
	t.Parallel()
	for dir, r := range workloads(t) {
		t.Run(dir, func(t *testing.T) {
			podsOf := func(sel labels.Selector) []*appsv1.Deployment {
				var out []*appsv1.Deployment
				for _, d := range r.Deployments {
					if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
						out = append(out, d)
					}
				}
				return out
			}
			for _, d := range r.Deployments {
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				require.NoError(t, err)
				require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s: selector misses its own pods", d.Name)
				if !strings.HasPrefix(d.Name, "cio-event-") {
					continue
				}
				tsc := d.Spec.Template.Spec.TopologySpreadConstraints
				require.NotEmpty(t, tsc, "%s: topologySpreadConstraints", d.Name)
				keys := []string{}
				for _, c := range tsc {
					s, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
					require.NoError(t, err)
					require.Equal(t, []*appsv1.Deployment{d}, podsOf(s), "%s: spread constraint selects other pods", d.Name)
					keys = append(keys, c.TopologyKey)
				}
				require.Contains(t, keys, "topology.kubernetes.io/zone")
				require.Contains(t, keys, "kubernetes.io/hostname")
			}
			for _, s := range r.Services {
				matched := podsOf(labels.SelectorFromSet(s.Spec.Selector))
				require.Len(t, matched, 1, "Service %s selects %d Deployments", s.Name, len(matched))
				d := matched[0]
				for _, p := range s.Spec.Ports {
					require.Equal(t, 1, int(p.TargetPort.Type), "Service %s: name the target port", s.Name)
					found := false
					for _, c := range d.Spec.Template.Spec.Containers {
						for _, cp := range c.Ports {
							found = found || cp.Name == p.TargetPort.StrVal
						}
					}
					require.True(t, found, "Service %s: targetPort %s not declared by %s", s.Name, p.TargetPort.StrVal, d.Name)
				}
			}
			for _, p := range r.PDBs {
				sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				require.NoError(t, err)
				require.Len(t, podsOf(sel), 1, "PodDisruptionBudget %s", p.Name)
				require.Nil(t, p.Spec.MinAvailable, "PodDisruptionBudget %s: minAvailable blocks drains of a 1-replica dev deployment; use maxUnavailable", p.Name)
			}
			for _, name := range []string{"cio-event-worker", "cio-event-ingest"} {
				require.NotNil(t, r.deployment(name), "Deployment %s", name)
				require.True(t, r.objectsByIdent["Service/"+name], "Service %s", name)
				require.True(t, r.objectsByIdent["PodDisruptionBudget/"+name], "PodDisruptionBudget %s", name)
			}
		})
	}
}

func TestOverlaySettings(t *testing.T) {
	t.Parallel()
	all := workloads(t)
	t.Run("DevRunsOneReplicaAgainstFakecio", func(t *testing.T) {
		t.Parallel()
		dev := all["overlays/dev"]
		for _, d := range dev.Deployments {
			require.Equal(t, ptr.To(int32(1)), d.Spec.Replicas, d.Name)
			for _, c := range d.Spec.Template.Spec.Containers {
				require.LessOrEqual(t, c.Resources.Limits.Memory().Cmp(resource.MustParse("256Mi")), 0, "%s: dev resources stay small", d.Name)
			}
		}
		cm := dev.configMap("cioq-config")
		require.NotNil(t, cm)
		require.Equal(t, "http://cioq-fakecio:8080", cm.Data["CUSTOMERIO_TRACK_URL"], "dev sends to the fake, never to Customer.io")
		require.Equal(t, "http://cioq-fakecio:8080", cm.Data["CUSTOMERIO_CDP_URL"], "dev sends Pipelines calls to the fake too")
		require.True(t, dev.objectsByIdent["Service/cioq-fakecio"])
		fake := dev.deployment("cioq-fakecio")
		require.NotNil(t, fake)
		require.Equal(t, "fakecio", fake.Spec.Template.Spec.Containers[0].Args[0])
		redis := dev.deployment("cioq-redis")
		require.NotNil(t, redis)
		args := strings.Join(redis.Spec.Template.Spec.Containers[0].Args, " ")
		for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
			require.Contains(t, args, want)
		}
		s := dev.secret("cioq-redis")
		require.NotNil(t, s)
		require.Equal(t, "redis://cioq-redis:6379/0", string(s.Data["CIOQ_REDIS_URL"]))
	})
	for _, dir := range []string{"overlays/prod", "overlays/prod-seed-hpa", "overlays/prod-keda"} {
		t.Run(strings.ReplaceAll(dir, "/", "-")+"GeneratesNoSecretAndPinsTheImage", func(t *testing.T) {
			t.Parallel()
			r := all[dir]
			require.Empty(t, r.Secrets, "production Secrets come from a secret store, never from the repo")
			for _, d := range r.Deployments {
				for _, c := range d.Spec.Template.Spec.Containers {
					require.NotEqual(t, cioqImage+":latest", c.Image, "%s: pin the image tag", d.Name)
				}
				require.Equal(t, "cioq", d.Namespace)
			}
			require.Equal(t, ptr.To(int32(3)), r.deployment("cio-event-ingest").Spec.Replicas)
		})
	}
}

// adapterConfig is prometheus-adapter's config file (pkg/config/config.go,
// v0.12), decoded strictly.
type adapterConfig struct {
	Rules         []adapterRule `json:"rules,omitempty"`
	ExternalRules []adapterRule `json:"externalRules,omitempty"`
	ResourceRules *struct {
		CPU    map[string]any `json:"cpu"`
		Memory map[string]any `json:"memory"`
		Window string         `json:"window"`
	} `json:"resourceRules,omitempty"`
}

type adapterRule struct {
	SeriesQuery   string `json:"seriesQuery"`
	SeriesFilters []struct {
		Is    string `json:"is,omitempty"`
		IsNot string `json:"isNot,omitempty"`
	} `json:"seriesFilters,omitempty"`
	Resources struct {
		Template  string `json:"template,omitempty"`
		Overrides map[string]struct {
			Group    string `json:"group,omitempty"`
			Resource string `json:"resource"`
		} `json:"overrides,omitempty"`
		Namespaced *bool `json:"namespaced,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as,omitempty"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

var seriesName = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
var eqMatcher = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)

// served is one metric the adapter serves: what an HPA names and the cioq
// series behind it.
type served struct{ hpaName, series string }

// adapterMetrics decodes the rendered adapter rules and returns the custom
// (per-pod) and external metrics they serve.
func adapterMetrics(t *testing.T) (custom, external []served) {
	t.Helper()
	r := renderAll(t)["prometheus-adapter"]
	cm := r.configMap("prometheus-adapter")
	require.NotNil(t, cm)
	var cfg adapterConfig
	require.NoError(t, yaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &cfg), "prometheus-adapter config.yaml")
	known := metricNames(t)
	check := func(kind string, rules []adapterRule) []served {
		var out []served
		for i, rule := range rules {
			m := seriesName.FindStringSubmatch(rule.SeriesQuery)
			require.NotNil(t, m, "%s[%d]: seriesQuery must start with a metric name", kind, i)
			series := m[1]
			require.True(t, known[series], "%s[%d]: %s is not in internal/metrics", kind, i, series)
			re, err := regexp.Compile(rule.Name.Matches)
			require.NoError(t, err)
			require.True(t, re.MatchString(series), "%s[%d]: name.matches %q misses %s", kind, i, rule.Name.Matches, series)
			require.Contains(t, rule.MetricsQuery, "<<.Series>>")
			require.Contains(t, rule.MetricsQuery, "<<.LabelMatchers>>")
			// <<.LabelMatchers>> never carries the seriesQuery's filters.
			for _, f := range eqMatcher.FindAllStringSubmatch(rule.SeriesQuery, -1) {
				require.Contains(t, rule.MetricsQuery, f[0], "%s[%d]: repeat %s in metricsQuery", kind, i, f[0])
			}
			require.Equal(t, "namespace", rule.Resources.Overrides["namespace"].Resource, "%s[%d]: map the namespace label", kind, i)
			out = append(out, served{hpaName: cmpOr(rule.Name.As, series), series: series})
		}
		return out
	}
	custom = check("rules", cfg.Rules)
	external = check("externalRules", cfg.ExternalRules)
	for i, rule := range cfg.ExternalRules {
		// Every exporter reports the same figure: sum would count it per pod.
		require.True(t, strings.HasPrefix(strings.TrimSpace(rule.MetricsQuery), "max("), "externalRules[%d]: use max(), not sum()", i)
	}
	return custom, external
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAutoscalers(t *testing.T) {
	t.Parallel()
	custom, external := adapterMetrics(t)
	findServed := func(list []served, name string) (served, bool) {
		for _, s := range list {
			if s.hpaName == name {
				return s, true
			}
		}
		return served{}, false
	}
	known := metricNames(t)
	for dir, r := range workloads(t) {
		t.Run(dir, func(t *testing.T) {
			scaled := map[string]int{}
			for _, h := range r.HPAs {
				ref := h.Spec.ScaleTargetRef
				require.Equal(t, "Deployment", ref.Kind)
				require.Equal(t, "apps/v1", ref.APIVersion)
				require.NotNil(t, r.deployment(ref.Name), "HPA %s targets missing Deployment %s", h.Name, ref.Name)
				scaled[ref.Name]++
				for _, m := range h.Spec.Metrics {
					switch m.Type {
					case autoscalingv2.ResourceMetricSourceType:
						require.Equal(t, corev1.ResourceCPU, m.Resource.Name)
					case autoscalingv2.PodsMetricSourceType:
						s, ok := findServed(custom, m.Pods.Metric.Name)
						require.True(t, ok, "HPA %s: Pods metric %s is served by no adapter rule", h.Name, m.Pods.Metric.Name)
						require.True(t, known[s.series])
					case autoscalingv2.ExternalMetricSourceType:
						s, ok := findServed(external, m.External.Metric.Name)
						require.True(t, ok, "HPA %s: External metric %s is served by no adapter externalRule", h.Name, m.External.Metric.Name)
						require.True(t, known[s.series])
						if s.series == "cioq_desired_replicas" {
							// desired = ceil(metric / averageValue): the gauge is the pod count.
							require.Equal(t, autoscalingv2.AverageValueMetricType, m.External.Target.Type)
							require.Equal(t, "1", m.External.Target.AverageValue.String())
						}
					default:
						require.Fail(t, "unexpected metric type", "HPA %s: %s", h.Name, m.Type)
					}
				}
			}
			for _, so := range r.ScaledObjects {
				require.NotNil(t, r.deployment(so.Spec.ScaleTargetRef.Name), "ScaledObject %s targets a missing Deployment", so.Metadata.Name)
				scaled[so.Spec.ScaleTargetRef.Name]++
				require.NotEmpty(t, so.Spec.Triggers)
				for _, tr := range so.Spec.Triggers {
					require.Equal(t, "prometheus", tr.Type)
					q := tr.Metadata["query"]
					require.NotEmpty(t, q)
					require.Empty(t, unknownMetrics(known, q), "ScaledObject %s query", so.Metadata.Name)
					require.Contains(t, usedMetrics(q), "cioq_desired_replicas")
					require.True(t, strings.HasPrefix(q, "max("), "one element from every exporter's same gauge: max()")
					require.Equal(t, "1", tr.Metadata["threshold"])
					require.Contains(t, q, `namespace="`+r.Namespace+`"`)
				}
			}
			for name, n := range scaled {
				require.Equal(t, 1, n, "%d autoscalers on Deployment %s fight each other", n, name)
			}
		})
	}
}

func TestSeedHPAIsTheSeeds(t *testing.T) {
	t.Parallel()
	r := workloads(t)["overlays/prod-seed-hpa"]
	require.Len(t, r.HPAs, 1)
	got := r.HPAs[0]
	// shared/seeds/003, "Step 3: Kubernetes HPA Autoscaling", field by field.
	want := autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "cio-event-worker"},
		MinReplicas:    ptr.To(int32(2)),
		MaxReplicas:    20,
		Metrics: []autoscalingv2.MetricSpec{
			{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(int32(70))}}},
			{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "cio_queue_depth"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("500"))}}},
		},
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(int32(60)),
				Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 60}}},
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(int32(300)),
				Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 120}}},
		},
	}
	require.Equal(t, "cio-worker-hpa", got.Name)
	requireNoDiff(t, want.Metrics[1].Pods.Target.AverageValue.String(), got.Spec.Metrics[1].Pods.Target.AverageValue.String())
	// resource.Quantity caches its string form: compare the rest without it.
	want.Metrics[1].Pods.Target.AverageValue, got.Spec.Metrics[1].Pods.Target.AverageValue = nil, nil
	requireNoDiff(t, want, got.Spec)
}

// The worker's admin paths (/monitoring/, /ops/) take their basic-auth
// credentials from a Secret in every overlay, never from a literal; the
// reference is optional, so without the Secret they are refused, not open.
func TestWorkerMonitoringCredentialsComeFromASecret(t *testing.T) {
	t.Parallel()
	for dir, r := range workloads(t) {
		t.Run(strings.ReplaceAll(dir, "/", "-"), func(t *testing.T) {
			d := r.deployment("cio-event-worker")
			require.NotNil(t, d)
			found := map[string]bool{}
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.Name != "CIOQ_MONITORING_USERNAME" && e.Name != "CIOQ_MONITORING_PASSWORD" {
					continue
				}
				require.Empty(t, e.Value, "%s: %s must come from a Secret", dir, e.Name)
				require.NotNil(t, e.ValueFrom, e.Name)
				require.NotNil(t, e.ValueFrom.SecretKeyRef, e.Name)
				require.Equal(t, "cioq-monitoring", hashSuffix.ReplaceAllString(e.ValueFrom.SecretKeyRef.Name, ""))
				require.NotNil(t, e.ValueFrom.SecretKeyRef.Optional)
				require.True(t, *e.ValueFrom.SecretKeyRef.Optional, "%s: without the Secret the pod still starts (admin paths refused)", e.Name)
				found[e.Name] = true
			}
			require.Equal(t, map[string]bool{"CIOQ_MONITORING_USERNAME": true, "CIOQ_MONITORING_PASSWORD": true}, found)
		})
	}
}
