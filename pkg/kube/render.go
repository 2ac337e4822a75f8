package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/yaml"
)

// Where the pods listen and keep their files.
const (
	HTTPPort  = 8080
	GRPCPort  = 9090
	bundleDir = "/var/lib/gyre/bundles"
	// nonRootUID is the distroless "nonroot" user the gyre image runs as.
	nonRootUID = 65532
	// gracePeriod outlasts the server's default 30s shutdownTimeout drain.
	gracePeriod = 45
	container   = "inference"
)

// Objects are the typed objects of one inference workload. HPA is nil when
// the spec has no autoscaling.
type Objects struct {
	Namespace  *corev1.Namespace
	Deployment *appsv1.Deployment
	Service    *corev1.Service
	HPA        *autoscalingv2.HorizontalPodAutoscaler
	PDB        *policyv1.PodDisruptionBudget
}

// Render validates the spec and returns its objects.
func Render(spec Spec) (*Objects, error) {
	w, err := build(spec)
	if err != nil {
		return nil, err
	}
	o := &Objects{
		Namespace: &corev1.Namespace{}, Deployment: &appsv1.Deployment{},
		Service: &corev1.Service{}, PDB: &policyv1.PodDisruptionBudget{},
	}
	convert := []struct{ from, to any }{
		{w.namespace, o.Namespace}, {w.deployment, o.Deployment}, {w.service, o.Service}, {w.pdb, o.PDB},
	}
	if w.hpa != nil {
		o.HPA = &autoscalingv2.HorizontalPodAutoscaler{}
		convert = append(convert, struct{ from, to any }{w.hpa, o.HPA})
	}
	// The apply configurations are the one source; the typed objects are
	// their JSON read back, so what Render shows is what Apply sends.
	for _, c := range convert {
		raw, err := json.Marshal(c.from)
		if err != nil {
			return nil, fmt.Errorf("render %T: %w", c.from, err)
		}
		if err := json.Unmarshal(raw, c.to); err != nil {
			return nil, fmt.Errorf("render %T: %w", c.to, err)
		}
	}
	return o, nil
}

// RenderYAML is the workload as one multi-document YAML, in apply order
// (Namespace, Deployment, Service, HorizontalPodAutoscaler,
// PodDisruptionBudget), keys sorted: what gyre deploy --dry-run prints.
func RenderYAML(spec Spec) ([]byte, error) {
	w, err := build(spec)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for i, obj := range w.all() {
		doc, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("render %T: %w", obj, err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(doc)
	}
	return out.Bytes(), nil
}

// workload holds the apply configurations of one spec.
type workload struct {
	spec       Spec
	name       string
	namespace  *corev1ac.NamespaceApplyConfiguration
	deployment *appsv1ac.DeploymentApplyConfiguration
	service    *corev1ac.ServiceApplyConfiguration
	hpa        *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration
	pdb        *policyv1ac.PodDisruptionBudgetApplyConfiguration
}

// all lists the objects in apply order.
func (w *workload) all() []any {
	objs := []any{w.namespace, w.deployment, w.service}
	if w.hpa != nil {
		objs = append(objs, w.hpa)
	}
	return append(objs, w.pdb)
}

func build(spec Spec) (*workload, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	s := spec.withDefaults()
	w := &workload{spec: s, name: ObjectName(s.Model)}

	// The selector is immutable, so it holds only what never changes for
	// this Deployment: never the version.
	selector := map[string]string{LabelName: AppName, LabelModel: s.Model, LabelEnvironment: s.Environment}
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, selector)
	labels[LabelManagedBy] = managedBy
	labels[LabelVersion] = strconv.FormatInt(s.Version, 10)
	annotations := map[string]string{AnnotationBundleSHA256: s.BundleSHA256}

	// Every model of the environment applies the namespace, so it gets no
	// per-model labels: they would flip with each model's deployment.
	w.namespace = corev1ac.Namespace(s.Namespace).
		WithLabels(map[string]string{LabelManagedBy: managedBy, LabelEnvironment: s.Environment})

	w.deployment = appsv1ac.Deployment(w.name, s.Namespace).
		WithLabels(labels).
		WithAnnotations(annotations).
		WithSpec(w.deploymentSpec(selector, labels, annotations))

	w.service = corev1ac.Service(w.name, s.Namespace).WithLabels(labels).WithSpec(corev1ac.ServiceSpec().
		WithType(corev1.ServiceTypeClusterIP).
		WithSelector(selector).
		WithPorts(
			corev1ac.ServicePort().WithName("http").WithProtocol(corev1.ProtocolTCP).
				WithPort(HTTPPort).WithTargetPort(intstr.FromString("http")),
			corev1ac.ServicePort().WithName("grpc").WithProtocol(corev1.ProtocolTCP).
				WithPort(GRPCPort).WithTargetPort(intstr.FromString("grpc")),
		))

	if a := s.Autoscaling; a != nil {
		w.hpa = autoscalingv2ac.HorizontalPodAutoscaler(w.name, s.Namespace).WithLabels(labels).WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").WithKind("Deployment").WithName(w.name)).
			WithMinReplicas(a.MinReplicas).
			WithMaxReplicas(a.MaxReplicas).
			WithMetrics(autoscalingv2ac.MetricSpec().
				WithType(autoscalingv2.ResourceMetricSourceType).
				WithResource(autoscalingv2ac.ResourceMetricSource().
					WithName(corev1.ResourceCPU).
					WithTarget(autoscalingv2ac.MetricTarget().
						WithType(autoscalingv2.UtilizationMetricType).
						WithAverageUtilization(a.TargetCPUUtilization)))))
	}

	// maxUnavailable 1 rather than minAvailable 1: a node drain can always
	// evict one pod at a time, even at one replica (minAvailable 1 would block
	// drains and cluster upgrades there), and at n replicas n-1 keep serving.
	w.pdb = policyv1ac.PodDisruptionBudget(w.name, s.Namespace).WithLabels(labels).WithSpec(policyv1ac.PodDisruptionBudgetSpec().
		WithMaxUnavailable(intstr.FromInt32(1)).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
		// A pod that never got ready serves nothing: don't let it block a drain.
		WithUnhealthyPodEvictionPolicy(policyv1.AlwaysAllow))
	return w, nil
}

func (w *workload) deploymentSpec(selector, labels, annotations map[string]string) *appsv1ac.DeploymentSpecApplyConfiguration {
	s := w.spec
	spec := appsv1ac.DeploymentSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
		WithRevisionHistoryLimit(3).
		// Old pods go only once new ones are ready: a new version replaces the
		// old one with no gap in serving.
		WithStrategy(appsv1ac.DeploymentStrategy().
			WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
				WithMaxUnavailable(intstr.FromInt32(0)).
				WithMaxSurge(intstr.FromString("25%")))).
		WithTemplate(corev1ac.PodTemplateSpec().
			WithLabels(labels).
			WithAnnotations(annotations).
			WithSpec(w.podSpec(selector)))
	// With autoscaling the replica count is left out, so re-applying never
	// resets what the HorizontalPodAutoscaler chose.
	if s.Autoscaling == nil {
		spec.WithReplicas(s.Replicas)
	}
	return spec
}

func (w *workload) podSpec(selector map[string]string) *corev1ac.PodSpecApplyConfiguration {
	s := w.spec
	env := []struct{ name, value string }{
		{"GYRE_HTTP_ADDR", "0.0.0.0:" + strconv.Itoa(HTTPPort)},
		{"GYRE_GRPC_ADDR", "0.0.0.0:" + strconv.Itoa(GRPCPort)},
		{"GYRE_INFERENCE_BUNDLE_DIR", bundleDir},
		{"GYRE_INFERENCE_STATIC_ENVIRONMENT", s.Environment},
		{"GYRE_INFERENCE_STATIC_MODEL", s.Model},
		{"GYRE_INFERENCE_STATIC_VERSION", strconv.FormatInt(s.Version, 10)},
		{"GYRE_INFERENCE_STATIC_BUNDLE_URI", s.BundleURI},
		{"GYRE_INFERENCE_STATIC_BUNDLE_SHA256", s.BundleSHA256},
	}
	envVars := make([]*corev1ac.EnvVarApplyConfiguration, len(env))
	for i, e := range env {
		envVars[i] = corev1ac.EnvVar().WithName(e.name).WithValue(e.value)
	}

	return corev1ac.PodSpec().
		// The pods never call the Kubernetes API, and service links would put
		// GYRE_<SERVICE>_* variables beside Gyre's own configuration.
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithTerminationGracePeriodSeconds(gracePeriod).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(nonRootUID).
			WithRunAsGroup(nonRootUID).
			WithFSGroup(nonRootUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithTopologySpreadConstraints(corev1ac.TopologySpreadConstraint().
			WithMaxSkew(1).
			WithTopologyKey("kubernetes.io/hostname").
			WithWhenUnsatisfiable(corev1.ScheduleAnyway).
			WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(selector))).
		WithContainers(corev1ac.Container().
			WithName(container).
			WithImage(s.Image).
			WithCommand("gyre", "server", "--target=inference").
			WithPorts(
				corev1ac.ContainerPort().WithName("http").WithContainerPort(HTTPPort).WithProtocol(corev1.ProtocolTCP),
				corev1ac.ContainerPort().WithName("grpc").WithContainerPort(GRPCPort).WithProtocol(corev1.ProtocolTCP),
			).
			// env wins over envFrom, so the Secret cannot change which model is served.
			WithEnvFrom(corev1ac.EnvFromSource().WithSecretRef(corev1ac.SecretEnvSource().WithName(s.SecretName))).
			WithEnv(envVars...).
			WithResources(w.resources()).
			WithReadinessProbe(corev1ac.Probe().
				WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/readyz").WithPort(intstr.FromString("http"))).
				WithPeriodSeconds(5).WithTimeoutSeconds(2).WithFailureThreshold(3)).
			WithLivenessProbe(corev1ac.Probe().
				WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/livez").WithPort(intstr.FromString("http"))).
				WithPeriodSeconds(10).WithTimeoutSeconds(2).WithFailureThreshold(3)).
			WithSecurityContext(corev1ac.SecurityContext().
				WithAllowPrivilegeEscalation(false).
				WithReadOnlyRootFilesystem(true).
				WithRunAsNonRoot(true).
				WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
			WithVolumeMounts(
				corev1ac.VolumeMount().WithName("bundles").WithMountPath(bundleDir),
				corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
			)).
		// The root filesystem is read-only: bundles and temp files go to emptyDirs.
		WithVolumes(
			corev1ac.Volume().WithName("bundles").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
			corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
		)
}

func (w *workload) resources() *corev1ac.ResourceRequirementsApplyConfiguration {
	r := w.spec.Resources
	requests := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(r.CPURequest),
		corev1.ResourceMemory: resource.MustParse(r.MemoryRequest),
	}
	limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(r.MemoryLimit)}
	if r.CPULimit != "" {
		limits[corev1.ResourceCPU] = resource.MustParse(r.CPULimit)
	}
	return corev1ac.ResourceRequirements().WithRequests(requests).WithLimits(limits)
}
