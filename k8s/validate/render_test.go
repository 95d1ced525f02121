package validate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is one kustomization's output, each object decoded into its
// typed struct.
type rendered struct {
	Dir            string
	Namespace      string // of the first Deployment
	Deployments    []*appsv1.Deployment
	Services       []*corev1.Service
	ConfigMaps     []*corev1.ConfigMap
	Secrets        []*corev1.Secret
	Accounts       []*corev1.ServiceAccount
	PDBs           []*policyv1.PodDisruptionBudget
	HPAs           []*autoscalingv2.HorizontalPodAutoscaler
	ScaledObjects  []*scaledObject
	KindsAndNames  []string // "Kind/name", sorted
	objectsByIdent map[string]bool
}

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1, v2.20
// CRD) cioq uses, decoded strictly: a field the CRD has but this struct lacks
// fails the test, so add it here (from the CRD) before using it.
type scaledObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		ScaleTargetRef struct {
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			Name                   string `json:"name"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		MinReplicaCount  *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32 `json:"maxReplicaCount,omitempty"`
		IdleReplicaCount *int32 `json:"idleReplicaCount,omitempty"`
		PollingInterval  *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod   *int32 `json:"cooldownPeriod,omitempty"`
		Fallback         *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback,omitempty"`
		Advanced *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name,omitempty"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// kustomizations lists every directory under k8s/ that kustomize renders on
// its own: the base, each overlay and the prometheus-adapter rules
// (components are rendered through the overlays that use them).
func kustomizations(tb testing.TB) []string {
	tb.Helper()
	k8s := filepath.Join(repoRoot(tb), "k8s")
	dirs := []string{filepath.Join(k8s, "base"), filepath.Join(k8s, "prometheus-adapter")}
	overlays, err := filepath.Glob(filepath.Join(k8s, "overlays", "*", "kustomization.yaml"))
	require.NoError(tb, err)
	require.NotEmpty(tb, overlays)
	for _, o := range overlays {
		dirs = append(dirs, filepath.Dir(o))
	}
	return dirs
}

// rel names a kustomization directory relative to k8s/.
func rel(tb testing.TB, dir string) string {
	r, err := filepath.Rel(filepath.Join(repoRoot(tb), "k8s"), dir)
	require.NoError(tb, err)
	return filepath.ToSlash(r)
}

// renderYAML runs kustomize (krusty, default options: files may not leave
// the kustomization's root, as with kubectl kustomize).
func renderYAML(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// strictDecoder decodes the built-in kinds cioq ships, rejecting unknown
// fields.
func strictDecoder() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
}

// decodeAll decodes a multi-document YAML stream strictly.
func decodeAll(data []byte) (*rendered, error) {
	dec := strictDecoder()
	r := &rendered{objectsByIdent: map[string]bool{}}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var errs []error
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, err
		}
		ident := tm.Kind + "/" + tm.Metadata.Name
		r.KindsAndNames = append(r.KindsAndNames, ident)
		r.objectsByIdent[ident] = true
		if tm.APIVersion == "keda.sh/v1alpha1" && tm.Kind == "ScaledObject" {
			var so scaledObject
			if err := yaml.UnmarshalStrict(doc, &so); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ident, err))
				continue
			}
			r.ScaledObjects = append(r.ScaledObjects, &so)
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", ident, tm.APIVersion, err))
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			r.Deployments = append(r.Deployments, o)
		case *corev1.Service:
			r.Services = append(r.Services, o)
		case *corev1.ConfigMap:
			r.ConfigMaps = append(r.ConfigMaps, o)
		case *corev1.Secret:
			r.Secrets = append(r.Secrets, o)
		case *corev1.ServiceAccount:
			r.Accounts = append(r.Accounts, o)
		case *policyv1.PodDisruptionBudget:
			r.PDBs = append(r.PDBs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.HPAs = append(r.HPAs, o)
		default:
			errs = append(errs, fmt.Errorf("%s: kind %T has no check here: add it to the scheme and the checks", ident, obj))
		}
	}
	sort.Strings(r.KindsAndNames)
	if len(r.Deployments) > 0 {
		r.Namespace = r.Deployments[0].Namespace
	}
	return r, errors.Join(errs...)
}

// renderAll renders and strictly decodes every kustomization, failing the
// test on the first error.
func renderAll(t *testing.T) map[string]*rendered {
	t.Helper()
	out := map[string]*rendered{}
	for _, dir := range kustomizations(t) {
		y, err := renderYAML(dir)
		require.NoError(t, err, "kustomize %s", rel(t, dir))
		r, err := decodeAll(y)
		require.NoError(t, err, "strict decoding of %s", rel(t, dir))
		r.Dir = rel(t, dir)
		out[r.Dir] = r
	}
	return out
}

func TestStrictDecodingRejectsMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{
			name: "MisspeltDeploymentField",
			doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n" +
				"  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n",
			wantErr: `unknown field "spec.replica"`,
		},
		{
			name: "V2beta1HPAFields",
			doc: "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec:\n" +
				"  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: x}\n  maxReplicas: 3\n" +
				"  metrics: [{type: Pods, pods: {metricName: q, targetAverageValue: 5}}]\n",
			wantErr: `unknown field "spec.metrics[0].pods.metricName"`,
		},
		{
			name:    "ScaledObjectTypo",
			doc:     "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  minReplicas: 2\n  triggers: []\n",
			wantErr: `unknown field "minReplicas"`,
		},
		{
			name:    "KindWithoutChecks",
			doc:     "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
			wantErr: `kind *v1.Namespace has no check here`,
		},
		{
			name:    "UnregisteredKind",
			doc:     "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\n",
			wantErr: `no kind "ServiceMonitor" is registered`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeAll([]byte(tt.doc))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestEveryKustomizationRendersStrictly(t *testing.T) {
	t.Parallel()
	all := renderAll(t)
	want := map[string][]string{
		"base": {
			"ConfigMap/cioq-config-", "Deployment/cio-event-ingest", "Deployment/cio-event-worker",
			"PodDisruptionBudget/cio-event-ingest", "PodDisruptionBudget/cio-event-worker",
			"Service/cio-event-ingest", "Service/cio-event-worker", "ServiceAccount/cioq",
		},
		"overlays/dev": {
			"ConfigMap/cioq-config-", "Deployment/cio-event-ingest", "Deployment/cio-event-worker",
			"Deployment/cioq-fakecio", "Deployment/cioq-redis",
			"PodDisruptionBudget/cio-event-ingest", "PodDisruptionBudget/cio-event-worker",
			"Secret/cioq-customerio-", "Secret/cioq-monitoring-", "Secret/cioq-redis-",
			"Service/cio-event-ingest", "Service/cio-event-worker", "Service/cioq-fakecio", "Service/cioq-redis",
			"ServiceAccount/cioq",
		},
		"overlays/prod": {
			"ConfigMap/cioq-config-", "Deployment/cio-event-ingest", "Deployment/cio-event-worker",
			"HorizontalPodAutoscaler/cio-event-worker",
			"PodDisruptionBudget/cio-event-ingest", "PodDisruptionBudget/cio-event-worker",
			"Service/cio-event-ingest", "Service/cio-event-worker", "ServiceAccount/cioq",
		},
		"overlays/prod-seed-hpa": {
			"ConfigMap/cioq-config-", "Deployment/cio-event-ingest", "Deployment/cio-event-worker",
			"HorizontalPodAutoscaler/cio-worker-hpa",
			"PodDisruptionBudget/cio-event-ingest", "PodDisruptionBudget/cio-event-worker",
			"Service/cio-event-ingest", "Service/cio-event-worker", "ServiceAccount/cioq",
		},
		"overlays/prod-keda": {
			"ConfigMap/cioq-config-", "Deployment/cio-event-ingest", "Deployment/cio-event-worker",
			"PodDisruptionBudget/cio-event-ingest", "PodDisruptionBudget/cio-event-worker",
			"ScaledObject/cio-event-worker",
			"Service/cio-event-ingest", "Service/cio-event-worker", "ServiceAccount/cioq",
		},
		"prometheus-adapter": {"ConfigMap/prometheus-adapter"},
	}
	got := map[string][]string{}
	for dir, r := range all {
		got[dir] = stripHashes(r.KindsAndNames)
	}
	requireNoDiff(t, want, got)
}

// stripHashes cuts the content hash kustomize appends to generated names.
func stripHashes(idents []string) []string {
	out := make([]string, len(idents))
	for i, s := range idents {
		out[i] = hashSuffix.ReplaceAllString(s, "-")
	}
	return out
}

// hashSuffix is the "-<10 chars>" kustomize appends to generated names (its
// hash alphabet has no vowels, 0, 1 or 3).
var hashSuffix = regexp.MustCompile(`-[2456789bcdfghkmt]{10}$`)

// requireNoDiff fails with cmp.Diff (-want +got) when want and got differ.
func requireNoDiff(tb testing.TB, want, got any, msgAndArgs ...any) {
	tb.Helper()
	if d := cmp.Diff(want, got); d != "" {
		require.Fail(tb, "mismatch (-want +got):\n"+d, msgAndArgs...)
	}
}
