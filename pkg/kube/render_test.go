package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml and deploy/kubernetes/inference.yaml from RenderYAML")

var goldens = []struct {
	file string
	spec func() Spec
}{
	{"autoscaled.yaml", autoscaledSpec},
	{"fixed.yaml", fixedSpec},
}

// The kustomization in deploy/kubernetes renders the autoscaled example.
const (
	exampleDir    = "../../deploy/kubernetes"
	exampleFile   = exampleDir + "/inference.yaml"
	exampleHeader = "# An example inference workload, as gyre deploy --dry-run prints it for a\n" +
		"# kubernetes-target pipeline. Kept equal to pkg/kube/testdata/autoscaled.yaml by\n" +
		"# pkg/kube's tests; `go test ./pkg/kube -update` rewrites both.\n"
)

func TestRenderYAMLGolden(t *testing.T) {
	for _, g := range goldens {
		got, err := RenderYAML(g.spec())
		if err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		again, _ := RenderYAML(g.spec())
		if !bytes.Equal(got, again) {
			t.Errorf("%s: two renders differ", g.file)
		}
		compareGolden(t, filepath.Join("testdata", g.file), got)
		if g.file == "autoscaled.yaml" {
			compareGolden(t, exampleFile, append([]byte(exampleHeader), got...))
		}
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/kube -update)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gl), len(wl)) {
		g, w := line(gl, i), line(wl, i)
		if g != w {
			t.Errorf("%s differs from RenderYAML at line %d:\n got: %q\nwant: %q\n(go test ./pkg/kube -update rewrites it)", path, i+1, g, w)
			return
		}
	}
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<EOF>"
}

// strict decodes YAML with the client-go scheme, unknown and duplicate fields being errors.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

func decodeStrict(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if gvk.Version == "" || gvk.Kind == "" {
			return nil, fmt.Errorf("document %d: no apiVersion or kind", len(objs)+1)
		}
		objs = append(objs, obj)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for l := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l...)
		}
	}
	return out
}

func rendered(t *testing.T, s Spec) []runtime.Object {
	t.Helper()
	o, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	objs := []runtime.Object{o.Namespace, o.Deployment, o.Service}
	if o.HPA != nil {
		objs = append(objs, o.HPA)
	}
	return append(objs, o.PDB)
}

func sameObjects(t *testing.T, what string, got, want []runtime.Object) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d objects, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !equality.Semantic.DeepEqual(got[i], want[i]) {
			t.Errorf("%s: object %d (%T) differs from Render's", what, i+1, want[i])
		}
	}
}

// Every golden document decodes strictly into the Kubernetes type of its
// kind, equals what Render returns, and survives an encode/decode round trip.
func TestGoldenDecodesStrictly(t *testing.T) {
	for _, g := range goldens {
		data, err := os.ReadFile(filepath.Join("testdata", g.file))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeStrict(data)
		if err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		sameObjects(t, g.file, objs, rendered(t, g.spec()))
		for i, obj := range objs {
			var buf bytes.Buffer
			if err := strict.Encode(obj, &buf); err != nil {
				t.Fatalf("%s: encode %d: %v", g.file, i+1, err)
			}
			back, _, err := strict.Decode(buf.Bytes(), nil, nil)
			if err != nil {
				t.Fatalf("%s: decode %d again: %v", g.file, i+1, err)
			}
			if !equality.Semantic.DeepEqual(back, obj) {
				t.Errorf("%s: document %d changed in a round trip", g.file, i+1)
			}
		}
	}
}

// The strict decoder is what makes the test above meaningful.
func TestStrictDecoderRefusesUnknownFields(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte("  replicas: 1\n"), []byte("  replicas: 1\n  replica: 2\n"), 1)
	if bytes.Equal(bad, data) {
		t.Fatal("fixture has no replicas line")
	}
	if _, err := decodeStrict(bad); err == nil || !strings.Contains(err.Error(), `unknown field "spec.replica"`) {
		t.Errorf("decodeStrict(unknown field) = %v", err)
	}
}

func TestRenderObjects(t *testing.T) {
	o, err := Render(autoscaledSpec())
	if err != nil {
		t.Fatal(err)
	}
	d := o.Deployment
	if d.Name != "gyre-fraud-detector" || d.Namespace != "gyre-production" || o.Namespace.Name != "gyre-production" {
		t.Errorf("names: deployment %s/%s, namespace %s", d.Namespace, d.Name, o.Namespace.Name)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("autoscaled deployment sets replicas %d: re-applying would fight the HPA", *d.Spec.Replicas)
	}
	if _, ok := d.Spec.Selector.MatchLabels[LabelVersion]; ok {
		t.Error("the selector holds the version: the next version could not be applied (selectors are immutable)")
	}
	if got := d.Spec.Template.Labels[LabelVersion]; got != "7" {
		t.Errorf("pod version label = %q", got)
	}
	if got := d.Spec.Template.Labels["team"]; got != "risk" {
		t.Errorf("extra label on pods = %q", got)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update = %+v, want maxUnavailable 0", ru)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, v := range map[string]string{
		"GYRE_INFERENCE_STATIC_MODEL": "fraud-detector", "GYRE_INFERENCE_STATIC_VERSION": "7",
		"GYRE_INFERENCE_STATIC_ENVIRONMENT": "production", "GYRE_INFERENCE_STATIC_BUNDLE_SHA256": testSHA,
		"GYRE_INFERENCE_STATIC_BUNDLE_URI": "s3://gyre/bundles/fraud-detector/7.tar.gz",
		"GYRE_HTTP_ADDR":                   "0.0.0.0:8080", "GYRE_GRPC_ADDR": "0.0.0.0:9090",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "gyre-inference" {
		t.Errorf("envFrom = %+v", c.EnvFrom)
	}
	if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !*sc.RunAsNonRoot {
		t.Errorf("container security context = %+v", sc)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/livez" {
		t.Error("probes do not use /readyz and /livez")
	}
	if got := c.Resources.Limits.Cpu().String(); got != "2" {
		t.Errorf("cpu limit = %s", got)
	}
	if d.Annotations[AnnotationBundleSHA256] != testSHA || d.Spec.Template.Annotations[AnnotationBundleSHA256] != testSHA {
		t.Error("bundle sha256 annotation missing")
	}
	if o.Service.Spec.Type != corev1.ServiceTypeClusterIP || len(o.Service.Spec.Ports) != 2 {
		t.Errorf("service = %+v", o.Service.Spec)
	}
	h := o.HPA
	if h == nil || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 10 ||
		h.Spec.ScaleTargetRef != (autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name}) ||
		*h.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 {
		t.Errorf("hpa = %+v", h)
	}
	if p := o.PDB.Spec; p.MaxUnavailable == nil || p.MaxUnavailable.IntValue() != 1 || p.MinAvailable != nil {
		t.Errorf("pdb = %+v", p)
	}

	fixed, err := Render(fixedSpec())
	if err != nil {
		t.Fatal(err)
	}
	if fixed.HPA != nil || fixed.Deployment.Spec.Replicas == nil || *fixed.Deployment.Spec.Replicas != 1 {
		t.Errorf("fixed: hpa %v, replicas %v", fixed.HPA, fixed.Deployment.Spec.Replicas)
	}
	if fixed.Deployment.Spec.Template.Spec.Containers[0].Image != "ghcr.io/gyreml/gyre:latest" {
		t.Error("fixed: image not from config")
	}
}

// kubectl kustomize (kubectl's own manifest engine, no cluster needed)
// must read the golden files, know their kinds (namePrefix follows the
// HPA's reference to the Deployment) and give back the same objects.
func TestGoldenKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	dir := t.TempDir()
	var resources []string
	for _, g := range goldens {
		data, err := os.ReadFile(filepath.Join("testdata", g.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, g.file), data, 0o644); err != nil {
			t.Fatal(err)
		}
		resources = append(resources, "- "+g.file)
	}
	kustomization := "resources:\n" + strings.Join(resources, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}

	var want []runtime.Object
	for _, g := range goldens {
		want = append(want, rendered(t, g.spec())...)
	}
	sameObjects(t, "kubectl kustomize testdata", byKind(kustomize(t, kubectl, dir)), byKind(want))
	sameObjects(t, "kubectl kustomize deploy/kubernetes", byKind(kustomize(t, kubectl, exampleDir)), byKind(rendered(t, autoscaledSpec())))

	prefixed := kustomization + "namePrefix: check-\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(prefixed), 0o644); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, obj := range kustomize(t, kubectl, dir) {
		if h, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			found = true
			if h.Name != "check-gyre-fraud-detector" || h.Spec.ScaleTargetRef.Name != "check-gyre-fraud-detector" {
				t.Errorf("kustomize namePrefix: hpa %s targets %s", h.Name, h.Spec.ScaleTargetRef.Name)
			}
		}
	}
	if !found {
		t.Error("kustomize output has no HorizontalPodAutoscaler")
	}
}

func kustomize(t *testing.T, kubectl, dir string) []runtime.Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	objs, err := decodeStrict(out)
	if err != nil {
		t.Fatalf("kubectl kustomize %s output: %v", dir, err)
	}
	return objs
}

// byKind orders objects by kind, namespace and name: kustomize sorts its
// output its own way.
func byKind(objs []runtime.Object) []runtime.Object {
	key := func(o runtime.Object) string {
		m := o.(interface {
			GetNamespace() string
			GetName() string
		})
		return fmt.Sprintf("%T/%s/%s", o, m.GetNamespace(), m.GetName())
	}
	out := append([]runtime.Object(nil), objs...)
	slices.SortFunc(out, func(a, b runtime.Object) int { return strings.Compare(key(a), key(b)) })
	return out
}

// The deployer's RBAC example grants every verb Applier uses.
func TestDeployerRBAC(t *testing.T) {
	data, err := os.ReadFile(exampleDir + "/deployer-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.ClusterRole
	for _, o := range objs {
		if r, ok := o.(*rbacv1.ClusterRole); ok {
			role = r
		}
	}
	if len(objs) != 3 || role == nil {
		t.Fatalf("want a ServiceAccount, ClusterRole and ClusterRoleBinding, got %d objects", len(objs))
	}
	allowed := func(group, resource, verb string) bool {
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, need := range []struct{ group, resource, verbs string }{
		{"", "namespaces", "create patch"},
		{"apps", "deployments", "get create patch delete"},
		{"", "services", "create patch delete"},
		{"autoscaling", "horizontalpodautoscalers", "create patch delete"},
		{"policy", "poddisruptionbudgets", "create patch delete"},
		{"", "pods", "list"},
	} {
		for _, verb := range strings.Fields(need.verbs) {
			if !allowed(need.group, need.resource, verb) {
				t.Errorf("ClusterRole does not allow %s on %s.%s", verb, need.resource, need.group)
			}
		}
	}
}

// The manifests in docs/kubernetes.md are valid, and its ClusterRole is the one in deploy/kubernetes.
func TestDocsManifests(t *testing.T) {
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	rbac, err := os.ReadFile(exampleDir + "/deployer-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fileObjs, err := decodeStrict(rbac)
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.Contains(block, "apiVersion:") {
			continue
		}
		blocks++
		objs, err := decodeStrict([]byte(block))
		if err != nil {
			t.Errorf("docs/kubernetes.md yaml block %d: %v", blocks, err)
			continue
		}
		for _, o := range objs {
			if role, ok := o.(*rbacv1.ClusterRole); ok && !equality.Semantic.DeepEqual(role, fileObjs[1]) {
				t.Error("the ClusterRole in docs/kubernetes.md differs from deploy/kubernetes/deployer-rbac.yaml")
			}
		}
	}
	if blocks != 2 {
		t.Errorf("found %d manifests in docs/kubernetes.md, want the Secret and the ClusterRole", blocks)
	}
}
