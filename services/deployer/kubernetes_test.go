package deployer

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/kube"
)

// playController completes whatever rollout the Deployment asks for, as the
// deployment controller would.
func playController(ctx context.Context, cs *fake.Clientset, ns, name string) {
	done := ""
	for ctx.Err() == nil {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && d.Spec.Template.Labels[kube.LabelVersion] != done {
			done = d.Spec.Template.Labels[kube.LabelVersion]
			n := int32(2)
			if d.Spec.Replicas != nil {
				n = *d.Spec.Replicas
			}
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			_, _ = cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKubernetesTargetRollsVersionsAndRemovesTheWorkload(t *testing.T) {
	cs := fake.NewClientset()
	cfg := config.Kubernetes{Image: "ghcr.io/gyreml/gyre:test", NamespacePrefix: "gyre-", RolloutTimeout: 10 * time.Second}
	k := NewKubernetes(cs, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go playController(ctx, cs, "gyre-production", kube.ObjectName("churn"))

	sha := strings.Repeat("a", 64)
	for _, v := range []int64{1, 2} {
		r := route{Env: "production", Model: "churn", Stable: ref{Version: v, URI: "s3://gyre/models/churn.tar.gz", SHA256: sha}}
		if err := k.Apply(ctx, r, true); err != nil {
			t.Fatalf("apply v%d: %v", v, err)
		}
		d, err := cs.AppsV1().Deployments("gyre-production").Get(ctx, "gyre-churn", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Labels[kube.LabelVersion]; got != map[int64]string{1: "1", 2: "2"}[v] {
			t.Fatalf("deployment runs version %q, want %d", got, v)
		}
	}
	if k.Gradual() {
		t.Fatal("the kubernetes target does not split traffic")
	}
	if err := k.Apply(ctx, route{Env: "production", Model: "churn"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments("gyre-production").Get(ctx, "gyre-churn", metav1.GetOptions{}); err == nil {
		t.Fatal("the workload outlived its route")
	}
}

// A dry run shows what Apply would apply.
func TestKubernetesManifests(t *testing.T) {
	k := NewKubernetes(fake.NewClientset(), config.Kubernetes{Image: "ghcr.io/gyreml/gyre:test", NamespacePrefix: "gyre-"})
	yaml, err := k.Manifests("staging", "churn", ref{Version: 3, URI: "s3://gyre/models/churn.tar.gz", SHA256: strings.Repeat("b", 64)})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Deployment", "kind: Service", "namespace: gyre-staging", "name: gyre-churn", "image: ghcr.io/gyreml/gyre:test", strings.Repeat("b", 64)} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("manifests lack %q:\n%s", want, yaml)
		}
	}
	if _, err := NewKubernetes(fake.NewClientset(), config.Kubernetes{}).Manifests("staging", "churn", ref{Version: 3}); err == nil {
		t.Error("manifests without an image rendered")
	}
}
