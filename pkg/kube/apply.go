package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// DefaultFieldManager owns the fields Gyre applies.
const DefaultFieldManager = "gyre-deployer"

// DefaultPollInterval is how often Wait looks at the Deployment.
const DefaultPollInterval = 2 * time.Second

// Applier applies inference workloads with server-side apply and waits for
// their rollouts.
type Applier struct {
	Client kubernetes.Interface
	// FieldManager defaults to DefaultFieldManager.
	FieldManager string
	// PollInterval defaults to DefaultPollInterval.
	PollInterval time.Duration
}

func (a *Applier) applyOptions() metav1.ApplyOptions {
	fm := a.FieldManager
	if fm == "" {
		fm = DefaultFieldManager
	}
	// Force: Gyre is the source of truth for these fields; a hand edit
	// (kubectl edit, another tool) is taken back rather than kept as a conflict.
	return metav1.ApplyOptions{FieldManager: fm, Force: true}
}

// Apply server-side applies every object of the spec, the namespace first.
// Without autoscaling, an HPA left from an earlier apply is deleted.
func (a *Applier) Apply(ctx context.Context, spec Spec) error {
	w, err := build(spec)
	if err != nil {
		return err
	}
	ns, opts := w.spec.Namespace, a.applyOptions()
	core, apps := a.Client.CoreV1(), a.Client.AppsV1()
	ref := func(kind string) string { return kind + " " + ns + "/" + w.name }

	if _, err := core.Namespaces().Apply(ctx, w.namespace, opts); err != nil {
		return fmt.Errorf("apply namespace %s: %w", ns, err)
	}
	if _, err := apps.Deployments(ns).Apply(ctx, w.deployment, opts); err != nil {
		return fmt.Errorf("apply %s: %w", ref("deployment"), err)
	}
	if _, err := core.Services(ns).Apply(ctx, w.service, opts); err != nil {
		return fmt.Errorf("apply %s: %w", ref("service"), err)
	}
	hpas := a.Client.AutoscalingV2().HorizontalPodAutoscalers(ns)
	if w.hpa != nil {
		if _, err := hpas.Apply(ctx, w.hpa, opts); err != nil {
			return fmt.Errorf("apply %s: %w", ref("horizontalpodautoscaler"), err)
		}
	} else if err := hpas.Delete(ctx, w.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", ref("horizontalpodautoscaler"), err)
	}
	if _, err := a.Client.PolicyV1().PodDisruptionBudgets(ns).Apply(ctx, w.pdb, opts); err != nil {
		return fmt.Errorf("apply %s: %w", ref("poddisruptionbudget"), err)
	}
	return nil
}

// Delete removes the model's objects from the spec's namespace; the
// namespace stays, as other models share it. Objects already gone are fine.
func (a *Applier) Delete(ctx context.Context, spec Spec) error {
	s := spec.withDefaults()
	if s.Model == "" || s.Namespace == "" {
		return errors.New("delete: model and environment (or namespace) are required")
	}
	name, ns := ObjectName(s.Model), s.Namespace
	deletes := []struct {
		kind string
		del  func(context.Context, string, metav1.DeleteOptions) error
	}{
		{"horizontalpodautoscaler", a.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete},
		{"poddisruptionbudget", a.Client.PolicyV1().PodDisruptionBudgets(ns).Delete},
		{"service", a.Client.CoreV1().Services(ns).Delete},
		{"deployment", a.Client.AppsV1().Deployments(ns).Delete},
	}
	var errs []error
	for _, d := range deletes {
		if err := d.del(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s/%s: %w", d.kind, ns, name, err))
		}
	}
	return errors.Join(errs...)
}

// RolloutStatus is where a model's Deployment stands.
type RolloutStatus struct {
	// Found is false when the Deployment does not exist.
	Found bool
	// Version is the model version of the Deployment's pod template.
	Version int64
	// Desired, Updated, Ready and Available count replicas: wanted, running
	// the current template, ready, available; Total includes old ones.
	Desired, Updated, Ready, Available, Total int32
	// Done: every desired replica runs the current template and is available.
	Done bool
	// Failed: the rollout passed its progress deadline; Message says why.
	Failed  bool
	Message string
}

// Status reads the rollout state of the spec's Deployment.
func (a *Applier) Status(ctx context.Context, spec Spec) (RolloutStatus, error) {
	s := spec.withDefaults()
	d, err := a.Client.AppsV1().Deployments(s.Namespace).Get(ctx, ObjectName(s.Model), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return RolloutStatus{}, nil
	}
	if err != nil {
		return RolloutStatus{}, fmt.Errorf("get deployment %s/%s: %w", s.Namespace, ObjectName(s.Model), err)
	}
	return rolloutStatus(d), nil
}

// rolloutStatus judges a Deployment as kubectl rollout status does.
func rolloutStatus(d *appsv1.Deployment) RolloutStatus {
	st := d.Status
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	version, _ := strconv.ParseInt(d.Spec.Template.Labels[LabelVersion], 10, 64)
	r := RolloutStatus{
		Found: true, Version: version, Desired: desired,
		Updated: st.UpdatedReplicas, Ready: st.ReadyReplicas, Available: st.AvailableReplicas, Total: st.Replicas,
	}
	if st.ObservedGeneration < d.Generation {
		r.Message = "waiting for the deployment controller to see the new spec"
		return r
	}
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse {
			r.Failed = true
			r.Message = fmt.Sprintf("%s: %s", c.Reason, c.Message)
			return r
		}
	}
	switch {
	case st.UpdatedReplicas < desired:
		r.Message = fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, desired)
	case st.Replicas > st.UpdatedReplicas:
		r.Message = fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		r.Message = fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	default:
		r.Done = true
		r.Message = fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, desired)
	}
	return r
}

// Wait polls the spec's Deployment until its rollout is done. It fails at
// once when the rollout passes its progress deadline (Progressing=False) or
// the Deployment now runs another version, and after timeout (none when 0)
// with what the rollout and its pods were waiting on.
func (a *Applier) Wait(ctx context.Context, spec Spec, timeout time.Duration) error {
	s := spec.withDefaults()
	name, ns := ObjectName(s.Model), s.Namespace
	interval := a.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	parent := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()

	var (
		last RolloutStatus
		seen *appsv1.Deployment
	)
	for {
		d, err := a.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			seen, last = d, rolloutStatus(d)
			if last.Version != s.Version {
				return fmt.Errorf("rollout of deployment %s/%s: it now runs version %d, not %d", ns, name, last.Version, s.Version)
			}
			if last.Failed {
				return fmt.Errorf("rollout of deployment %s/%s (version %d) failed: %s%s",
					ns, name, s.Version, last.Message, a.podProblems(context.WithoutCancel(ctx), d))
			}
			if last.Done {
				return nil
			}
		case apierrors.IsNotFound(err):
			return fmt.Errorf("rollout of deployment %s/%s: not found", ns, name)
		case ctx.Err() == nil:
			// A failed read (API server restarting) is retried until the timeout.
			last.Message = err.Error()
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("rollout of deployment %s/%s (version %d): %w", ns, name, s.Version, err)
			}
			msg := last.Message
			if seen != nil {
				msg += a.podProblems(context.WithoutCancel(ctx), seen)
			}
			return fmt.Errorf("rollout of deployment %s/%s (version %d) not done after %s: %s", ns, name, s.Version, timeout, msg)
		case <-tick.C:
		}
	}
}

// podProblems names why the Deployment's pods are not ready (ImagePullBackOff,
// CrashLoopBackOff, a failing probe...), at most three, or "" when it cannot tell.
func (a *Applier) podProblems(ctx context.Context, d *appsv1.Deployment) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sel := labels.SelectorFromSet(d.Spec.Template.Labels).String()
	pods, err := a.Client.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return ""
	}
	var seen []string
	note := func(why string) {
		why = strings.TrimSuffix(why, ": ")
		if why != "" && !slices.Contains(seen, why) && len(seen) < 3 {
			seen = append(seen, why)
		}
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				note("unschedulable: " + c.Message)
			}
		}
		for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "ContainerCreating":
				note(cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message)
			case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
				note("terminated " + cs.State.Terminated.Reason + ": " + cs.State.Terminated.Message)
			case cs.State.Running != nil && !cs.Ready:
				note("container " + cs.Name + " running but not ready (/readyz not passing)")
			}
		}
	}
	if len(seen) == 0 {
		return ""
	}
	return "; pods: " + strings.Join(seen, "; ")
}
