package kube

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gyreml/gyre/pkg/config"
)

const testSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// autoscaledSpec is the production fixture of testdata/autoscaled.yaml.
func autoscaledSpec() Spec {
	return Spec{
		Model: "fraud-detector", Version: 7, Environment: "production",
		BundleURI: "s3://gyre/bundles/fraud-detector/7.tar.gz", BundleSHA256: testSHA,
		Image:       "ghcr.io/gyreml/gyre:v0.4.0",
		Autoscaling: &Autoscaling{MinReplicas: 3, MaxReplicas: 10, TargetCPUUtilization: 60},
		Resources:   Resources{CPURequest: "500m", CPULimit: "2", MemoryRequest: "512Mi", MemoryLimit: "2Gi"},
		SecretName:  "gyre-inference",
		Labels:      map[string]string{"team": "risk", "example.com/cost-center": "ml-42"},
	}
}

// fixedSpec is the staging fixture of testdata/fixed.yaml: NewSpec with the
// default config and one replica.
func fixedSpec() Spec {
	s := NewSpec(config.Default().Deployer.Kubernetes, "staging", "churn", 3, "s3://gyre/bundles/churn/3.tar.gz", testSHA)
	s.Replicas = 1
	return s
}

func TestValidateAcceptsFixtures(t *testing.T) {
	for _, s := range []Spec{autoscaledSpec(), fixedSpec()} {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%s) = %v", s.Model, err)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Spec)
		want   []string // substrings of the error, each naming its field
	}{
		{"everything missing", func(s *Spec) { *s = Spec{} }, []string{
			"model: required", "version: must be at least 1", "environment: required",
			"bundleURI: required", "bundleSHA256: want 64 lowercase hex digits", "image: required", "namespace: required"}},
		{"model not a DNS label", func(s *Spec) { s.Model = "Fraud_Detector" }, []string{`model: "Fraud_Detector" is not a valid model name`}},
		{"model too long", func(s *Spec) { s.Model = strings.Repeat("m", 64) }, []string{"model: ", "no more than 63 characters"}},
		{"environment", func(s *Spec) { s.Environment = "Prod" }, []string{`environment: "Prod" is not a valid environment name`}},
		{"namespace too long", func(s *Spec) { s.Namespace = strings.Repeat("n", 64) }, []string{"namespace: "}},
		{"bundle uri", func(s *Spec) { s.BundleURI = "/tmp/b.tar.gz" }, []string{`bundleURI: "/tmp/b.tar.gz" is not an s3://bucket/key URI`}},
		{"bundle sha upper case", func(s *Spec) { s.BundleSHA256 = strings.ToUpper(testSHA) }, []string{"bundleSHA256: want 64 lowercase hex digits"}},
		{"image with space", func(s *Spec) { s.Image = "gyre latest" }, []string{"image: "}},
		{"secret", func(s *Spec) { s.SecretName = "Gyre Secret" }, []string{`secretName: "Gyre Secret" is not a valid Secret name`}},
		{"replicas beside autoscaling", func(s *Spec) { s.Replicas = 2 }, []string{"replicas: must be 0 with autoscaling"}},
		{"negative replicas", func(s *Spec) { s.Autoscaling = nil; s.Replicas = -1 }, []string{"replicas: must be at least 1, got -1"}},
		{"max below min", func(s *Spec) { s.Autoscaling.MaxReplicas = 2 }, []string{"autoscaling.maxReplicas: must be at least minReplicas (3), got 2"}},
		{"no max", func(s *Spec) { s.Autoscaling.MaxReplicas = 0 }, []string{"autoscaling.maxReplicas: "}},
		{"cpu target", func(s *Spec) { s.Autoscaling.TargetCPUUtilization = -5 }, []string{"autoscaling.targetCPUUtilization: must be a positive percentage"}},
		{"bad quantity", func(s *Spec) { s.Resources.MemoryRequest = "lots" }, []string{`resources.memoryRequest: "lots" is not a Kubernetes quantity`}},
		{"limit below request", func(s *Spec) { s.Resources.CPULimit = "100m" }, []string{"resources.cpuLimit: 100m is below the request 500m"}},
		{"zero quantity", func(s *Spec) { s.Resources.MemoryLimit = "0" }, []string{"resources.memoryLimit: must be positive"}},
		{"reserved label", func(s *Spec) { s.Labels = map[string]string{"gyre.dev/version": "9", LabelName: "x"} }, []string{
			`labels["app.kubernetes.io/name"]: reserved`, `labels["gyre.dev/version"]: reserved`}},
		{"bad label", func(s *Spec) { s.Labels = map[string]string{"team": "risk & fraud", "bad key!": "x"} }, []string{
			`labels["team"]: invalid value "risk & fraud"`, `labels["bad key!"]: invalid key`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := autoscaledSpec()
			c.mutate(&s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted the spec")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if _, rerr := Render(s); rerr == nil {
				t.Error("Render accepted an invalid spec")
			}
		})
	}
}

func TestNewSpecUsesConfig(t *testing.T) {
	cfg := config.Kubernetes{Image: "registry.local/gyre:1", NamespacePrefix: "ml-"}
	s := NewSpec(cfg, "production", "churn", 4, "s3://b/k", testSHA)
	if s.Image != cfg.Image || s.Namespace != "ml-production" {
		t.Errorf("NewSpec = image %q namespace %q", s.Image, s.Namespace)
	}
	if got := (Spec{Environment: "staging"}).withDefaults().Namespace; got != "gyre-staging" {
		t.Errorf("default namespace = %q", got)
	}
}

func TestObjectName(t *testing.T) {
	if got := ObjectName("churn"); got != "gyre-churn" {
		t.Errorf("ObjectName(churn) = %q", got)
	}
	long := strings.Repeat("a", 48) + "-" + strings.Repeat("b", 14) // 63, the longest model name
	other := strings.Repeat("a", 48) + "-" + strings.Repeat("c", 14)
	n1, n2 := ObjectName(long), ObjectName(other)
	for _, n := range []string{n1, n2, ObjectName(strings.Repeat("z", 58)), ObjectName(strings.Repeat("z", 59))} {
		if msgs := validation.IsDNS1035Label(n); len(msgs) > 0 {
			t.Errorf("ObjectName = %q: %v", n, msgs)
		}
	}
	if n1 == n2 {
		t.Errorf("two long models share the name %q", n1)
	}
	if ObjectName(long) != n1 {
		t.Error("ObjectName is not deterministic")
	}
}
