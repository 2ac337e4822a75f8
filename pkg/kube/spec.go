// Package kube renders and applies the Kubernetes workload that serves one
// model version in one environment: a Deployment of Gyre's own inference
// server (gyre server --target=inference) that downloads, verifies and serves
// the version's bundle, with its Service, PodDisruptionBudget and, when asked,
// HorizontalPodAutoscaler. The deployer calls it for pipelines whose
// deployment.target is kubernetes.
package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gyreml/gyre/pkg/config"
)

// Labels and annotations Gyre sets on every object; Spec.Labels may not set them.
const (
	LabelName        = "app.kubernetes.io/name"
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	LabelModel       = "gyre.dev/model"
	LabelEnvironment = "gyre.dev/environment"
	LabelVersion     = "gyre.dev/version"

	AnnotationBundleSHA256 = "gyre.dev/bundle-sha256"

	// AppName is the app.kubernetes.io/name of every inference workload.
	AppName   = "gyre-inference"
	managedBy = "gyre"
)

// Defaults for the optional fields of Spec.
const (
	DefaultNamespacePrefix = "gyre-"
	DefaultSecretName      = "gyre"
	DefaultReplicas        = 2
	DefaultMinReplicas     = 2
	DefaultTargetCPU       = 70
	DefaultCPURequest      = "250m"
	DefaultMemoryRequest   = "256Mi"
	DefaultMemoryLimit     = "1Gi"
)

// Spec is the inference workload of one model version in one environment.
// Required: Model, Version, Environment, BundleURI, BundleSHA256, Image.
// The rest has defaults (see withDefaults).
type Spec struct {
	// Model is the registry's model name, a DNS label (pipeline.ValidName);
	// the objects are named from it (ObjectName).
	Model       string
	Version     int64
	Environment string
	// BundleURI (s3://bucket/key) and BundleSHA256 are what the pods download and verify.
	BundleURI    string
	BundleSHA256 string
	// Image runs gyre server --target=inference.
	Image string
	// Namespace defaults to DefaultNamespacePrefix + Environment. Each
	// environment needs its own: the objects' names do not include it.
	Namespace string
	// Replicas is the fixed replica count when Autoscaling is nil (default 2).
	Replicas int32
	// Autoscaling, when set, renders a HorizontalPodAutoscaler that owns the
	// replica count; Replicas must then be 0.
	Autoscaling *Autoscaling
	Resources   Resources
	// SecretName is the operator's Secret whose keys become the pods'
	// environment (GYRE_S3_*, GYRE_NATS_URL, ...); default "gyre".
	SecretName string
	// Labels are added to every object and to the pods; Gyre's own keys are refused.
	Labels map[string]string
}

// Autoscaling scales the Deployment on CPU utilisation (of the CPU request).
type Autoscaling struct {
	MinReplicas int32 // default 2
	MaxReplicas int32 // required, at least MinReplicas
	// TargetCPUUtilization is a percentage of the CPU request (default 70).
	TargetCPUUtilization int32
}

// Resources are Kubernetes quantities ("500m", "512Mi"); empty CPULimit means
// none, so a busy pod is not throttled below what the node can give.
type Resources struct {
	CPURequest    string // default 250m
	CPULimit      string
	MemoryRequest string // default 256Mi
	MemoryLimit   string // default 1Gi
}

// NewSpec is the spec the deployer starts from: image and namespace from the
// deployer.kubernetes config, everything optional at its default.
func NewSpec(cfg config.Kubernetes, environment, model string, version int64, bundleURI, bundleSHA256 string) Spec {
	return Spec{
		Model: model, Version: version, Environment: environment,
		BundleURI: bundleURI, BundleSHA256: bundleSHA256,
		Image:     cfg.Image,
		Namespace: cfg.NamespacePrefix + environment,
	}
}

// ObjectName names the Deployment, Service, HPA and PDB of a model: gyre-<model>,
// shortened with a hash of the full name when that would pass the 63
// characters a Service name may have.
func ObjectName(model string) string {
	const prefix, max = "gyre-", validation.DNS1035LabelMaxLength
	if len(prefix)+len(model) <= max {
		return prefix + model
	}
	sum := sha256.Sum256([]byte(model))
	suffix := "-" + hex.EncodeToString(sum[:4])
	head := strings.TrimRight(model[:max-len(prefix)-len(suffix)], "-")
	return prefix + head + suffix
}

// withDefaults fills the optional fields that are unset.
func (s Spec) withDefaults() Spec {
	if s.Namespace == "" && s.Environment != "" {
		s.Namespace = DefaultNamespacePrefix + s.Environment
	}
	if s.SecretName == "" {
		s.SecretName = DefaultSecretName
	}
	if s.Autoscaling == nil && s.Replicas == 0 {
		s.Replicas = DefaultReplicas
	}
	if s.Autoscaling != nil {
		a := *s.Autoscaling
		if a.MinReplicas == 0 {
			a.MinReplicas = DefaultMinReplicas
		}
		if a.TargetCPUUtilization == 0 {
			a.TargetCPUUtilization = DefaultTargetCPU
		}
		s.Autoscaling = &a
	}
	r := &s.Resources
	if r.CPURequest == "" {
		r.CPURequest = DefaultCPURequest
	}
	if r.MemoryRequest == "" {
		r.MemoryRequest = DefaultMemoryRequest
	}
	if r.MemoryLimit == "" {
		r.MemoryLimit = DefaultMemoryLimit
	}
	s.Labels = maps.Clone(s.Labels)
	return s
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate reports every problem of the spec (with its defaults applied), each
// naming its field.
func (s Spec) Validate() error {
	s = s.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	dnsLabel := func(field, what, v string) {
		if v == "" {
			bad(field, "required")
		} else if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			bad(field, "%q is not a valid %s: %s", v, what, strings.Join(msgs, "; "))
		}
	}

	// Gyre's registry only accepts DNS-label model names, so a name that is
	// not one is refused rather than rewritten into another model's name.
	dnsLabel("model", "model name (Kubernetes object names and labels are derived from it)", s.Model)
	if s.Version < 1 {
		bad("version", "must be at least 1, got %d", s.Version)
	}
	dnsLabel("environment", "environment name", s.Environment)
	switch {
	case s.BundleURI == "":
		bad("bundleURI", "required")
	case !strings.HasPrefix(s.BundleURI, "s3://") || len(s.BundleURI) == len("s3://"):
		bad("bundleURI", "%q is not an s3://bucket/key URI", s.BundleURI)
	}
	if !sha256Hex.MatchString(s.BundleSHA256) {
		bad("bundleSHA256", "want 64 lowercase hex digits, got %q", s.BundleSHA256)
	}
	if s.Image == "" {
		bad("image", "required")
	} else if strings.ContainsAny(s.Image, " \t\n") {
		bad("image", "%q contains whitespace", s.Image)
	}
	dnsLabel("namespace", "namespace name", s.Namespace)
	if msgs := validation.IsDNS1123Subdomain(s.SecretName); len(msgs) > 0 {
		bad("secretName", "%q is not a valid Secret name: %s", s.SecretName, strings.Join(msgs, "; "))
	}

	if a := s.Autoscaling; a != nil {
		if s.Replicas != 0 {
			bad("replicas", "must be 0 with autoscaling (the HorizontalPodAutoscaler owns the replica count), got %d", s.Replicas)
		}
		if a.MinReplicas < 1 {
			bad("autoscaling.minReplicas", "must be at least 1, got %d", a.MinReplicas)
		}
		if a.MaxReplicas < a.MinReplicas {
			bad("autoscaling.maxReplicas", "must be at least minReplicas (%d), got %d", a.MinReplicas, a.MaxReplicas)
		}
		if a.TargetCPUUtilization < 1 {
			bad("autoscaling.targetCPUUtilization", "must be a positive percentage, got %d", a.TargetCPUUtilization)
		}
	} else if s.Replicas < 1 {
		bad("replicas", "must be at least 1, got %d", s.Replicas)
	}

	r := s.Resources
	for _, pair := range []struct{ what, request, limit string }{
		{"cpu", r.CPURequest, r.CPULimit},
		{"memory", r.MemoryRequest, r.MemoryLimit},
	} {
		req, reqOK := quantity(bad, "resources."+pair.what+"Request", pair.request)
		lim, limOK := quantity(bad, "resources."+pair.what+"Limit", pair.limit)
		if reqOK && limOK && pair.limit != "" && req.Cmp(lim) > 0 {
			bad("resources."+pair.what+"Limit", "%s is below the request %s", pair.limit, pair.request)
		}
	}

	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		field := "labels[" + strconv.Quote(k) + "]"
		if reservedLabel(k) {
			bad(field, "reserved: Gyre sets it")
			continue
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			bad(field, "invalid key: %s", strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(s.Labels[k]); len(msgs) > 0 {
			bad(field, "invalid value %q: %s", s.Labels[k], strings.Join(msgs, "; "))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kubernetes spec: %w", errors.Join(errs...))
	}
	return nil
}

// quantity parses a resource quantity; empty is allowed (and not ok to compare).
func quantity(bad func(string, string, ...any), field, v string) (resource.Quantity, bool) {
	if v == "" {
		return resource.Quantity{}, false
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		bad(field, "%q is not a Kubernetes quantity (e.g. 500m, 512Mi)", v)
		return q, false
	}
	if q.Sign() <= 0 {
		bad(field, "must be positive, got %q", v)
		return q, false
	}
	return q, true
}

func reservedLabel(k string) bool {
	return k == LabelName || k == LabelManagedBy || strings.HasPrefix(k, "gyre.dev/")
}
