package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The fake clientset's tracker implements server-side apply with field
// management, so these tests see ownership and Force as a server would.

func newApplier() (*Applier, *fake.Clientset) {
	cs := fake.NewClientset()
	return &Applier{Client: cs, PollInterval: 5 * time.Millisecond}, cs
}

func mustApply(t *testing.T, a *Applier, s Spec) {
	t.Helper()
	if err := a.Apply(context.Background(), s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func getDeployment(t *testing.T, cs *fake.Clientset, s Spec) *appsv1.Deployment {
	t.Helper()
	s = s.withDefaults()
	d, err := cs.AppsV1().Deployments(s.Namespace).Get(context.Background(), ObjectName(s.Model), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// snapshot reads every object of the spec, managed-field times cleared.
func snapshot(t *testing.T, cs *fake.Clientset, s Spec) []runtime.Object {
	t.Helper()
	ctx, s := context.Background(), s.withDefaults()
	name, ns := ObjectName(s.Model), s.Namespace
	var objs []runtime.Object
	add := func(obj runtime.Object, err error) {
		if err != nil {
			t.Fatal(err)
		}
		m := obj.(metav1.Object)
		fields := m.GetManagedFields()
		for i := range fields {
			fields[i].Time = nil
		}
		objs = append(objs, obj)
	}
	add(cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}))
	add(cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}))
	add(cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}))
	add(cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{}))
	add(cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{}))
	return objs
}

func TestApplyServerSideTwiceIsIdempotent(t *testing.T) {
	a, cs := newApplier()
	s := autoscaledSpec()
	mustApply(t, a, s)
	var kinds []string
	for _, act := range cs.Actions() {
		p, ok := act.(k8stesting.PatchAction)
		if !ok || p.GetPatchType() != types.ApplyPatchType {
			t.Errorf("%s %s is not a server-side apply", act.GetVerb(), act.GetResource().Resource)
			continue
		}
		kinds = append(kinds, act.GetResource().Resource)
	}
	want := "namespaces deployments services horizontalpodautoscalers poddisruptionbudgets"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("applied %s, want %s", got, want)
	}
	first := snapshot(t, cs, s)
	for _, obj := range first {
		mf := obj.(metav1.Object).GetManagedFields()
		if len(mf) != 1 || mf[0].Manager != DefaultFieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%T managed fields = %+v", obj, mf)
		}
	}

	mustApply(t, a, s)
	second := snapshot(t, cs, s)
	for i := range first {
		if !equality.Semantic.DeepEqual(first[i], second[i]) {
			t.Errorf("%T changed on a second apply of the same spec", first[i])
		}
	}
	// The rendered spec is exactly what the cluster holds.
	o, _ := Render(s)
	if got := second[1].(*appsv1.Deployment); !equality.Semantic.DeepEqual(got.Spec, o.Deployment.Spec) {
		t.Error("applied deployment spec differs from Render's")
	}
}

func TestApplyNewVersionUpdatesDeployment(t *testing.T) {
	a, cs := newApplier()
	v7 := autoscaledSpec()
	mustApply(t, a, v7)
	before := getDeployment(t, cs, v7)

	v8 := autoscaledSpec()
	v8.Version, v8.BundleURI = 8, "s3://gyre/bundles/fraud-detector/8.tar.gz"
	v8.BundleSHA256 = strings.Repeat("ab", 32)
	mustApply(t, a, v8)
	d := getDeployment(t, cs, v8)

	if d.Spec.Template.Labels[LabelVersion] != "8" || d.Labels[LabelVersion] != "8" {
		t.Errorf("version labels = %q / %q", d.Spec.Template.Labels[LabelVersion], d.Labels[LabelVersion])
	}
	if d.Spec.Template.Annotations[AnnotationBundleSHA256] != v8.BundleSHA256 {
		t.Error("pod template keeps the old bundle sha256")
	}
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["GYRE_INFERENCE_STATIC_VERSION"] != "8" || env["GYRE_INFERENCE_STATIC_BUNDLE_URI"] != v8.BundleURI ||
		env["GYRE_INFERENCE_STATIC_BUNDLE_SHA256"] != v8.BundleSHA256 || len(env) != 8 {
		t.Errorf("env = %v", env)
	}
	if !equality.Semantic.DeepEqual(d.Spec.Selector, before.Spec.Selector) {
		t.Error("selector changed between versions (immutable on a real cluster)")
	}
	list, err := cs.AppsV1().Deployments("gyre-production").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("deployments in gyre-production = %d (%v), want the one replaced in place", len(list.Items), err)
	}
}

func TestApplyTakesBackHandEdits(t *testing.T) {
	a, cs := newApplier()
	s := fixedSpec()
	mustApply(t, a, s)
	d := getDeployment(t, cs, s)
	d.Spec.Template.Spec.Containers[0].Image = "someone/else:edited"
	if _, err := cs.AppsV1().Deployments(d.Namespace).Update(context.Background(), d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, a, s)
	if got := getDeployment(t, cs, s).Spec.Template.Spec.Containers[0].Image; got != s.Image {
		t.Errorf("image = %q after apply, want %q (Force takes the field back)", got, s.Image)
	}
}

func TestApplyWithoutAutoscalingDeletesTheHPA(t *testing.T) {
	a, cs := newApplier()
	s := autoscaledSpec()
	mustApply(t, a, s)
	s.Autoscaling, s.Replicas = nil, 4
	mustApply(t, a, s)
	_, err := cs.AutoscalingV2().HorizontalPodAutoscalers("gyre-production").Get(context.Background(), "gyre-fraud-detector", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("HPA after autoscaling was turned off: %v", err)
	}
	if r := getDeployment(t, cs, s).Spec.Replicas; r == nil || *r != 4 {
		t.Errorf("replicas = %v, want 4", r)
	}
}

func TestApplyRefusesInvalidSpec(t *testing.T) {
	a, cs := newApplier()
	s := fixedSpec()
	s.Model = "Churn Model"
	if err := a.Apply(context.Background(), s); err == nil || !strings.Contains(err.Error(), "model: ") {
		t.Errorf("Apply(invalid) = %v", err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Errorf("an invalid spec made %d API calls", n)
	}
}

// setStatus plays the deployment controller: it writes the Deployment's status.
func setStatus(t *testing.T, cs *fake.Clientset, s Spec, st appsv1.DeploymentStatus) {
	t.Helper()
	d := getDeployment(t, cs, s)
	st.ObservedGeneration = d.Generation
	d.Status = st
	if _, err := cs.AppsV1().Deployments(d.Namespace).UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
}

func TestWaitReturnsWhenTheRolloutCompletes(t *testing.T) {
	a, cs := newApplier()
	s := fixedSpec()
	s.Replicas = 2
	mustApply(t, a, s)

	steps := []appsv1.DeploymentStatus{
		{Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2, AvailableReplicas: 2}, // one new pod surging
		{Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3}, // old pod still terminating
		{Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1}, // new pods not all available
		{Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}, // done
	}
	reached, finished := make(chan int, len(steps)), make(chan struct{})
	go func() {
		defer close(finished)
		for i, st := range steps {
			time.Sleep(20 * time.Millisecond)
			reached <- i // before the write, so a Wait that returns on it sees i
			setStatus(t, cs, s, st)
		}
	}()
	if err := a.Wait(context.Background(), s, 5*time.Second); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	<-finished
	last := -1
	for len(reached) > 0 {
		last = <-reached
	}
	if last != len(steps)-1 {
		t.Errorf("Wait returned at step %d, before the rollout completed", last)
	}
	st, err := a.Status(context.Background(), s)
	if err != nil || !st.Done || st.Version != 3 || st.Available != 2 {
		t.Errorf("Status = %+v, %v", st, err)
	}
}

func TestWaitFailsOnProgressDeadline(t *testing.T) {
	a, cs := newApplier()
	s := fixedSpec()
	mustApply(t, a, s)
	d := getDeployment(t, cs, s)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gyre-churn-7d4b9-x2x9q", Namespace: d.Namespace, Labels: d.Spec.Template.Labels},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: container,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "ImagePullBackOff", Message: `Back-off pulling image "ghcr.io/gyreml/gyre:latest"`}},
		}}},
	}
	if _, err := cs.CoreV1().Pods(d.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setStatus(t, cs, s, appsv1.DeploymentStatus{
		Replicas: 1, UnavailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
			Message: `ReplicaSet "gyre-churn-7d4b9" has timed out progressing.`,
		}},
	})
	start := time.Now()
	err := a.Wait(context.Background(), s, 10*time.Second)
	if err == nil {
		t.Fatal("Wait succeeded past the progress deadline")
	}
	for _, want := range []string{"ProgressDeadlineExceeded", "has timed out progressing", "ImagePullBackOff", "gyre-staging/gyre-churn"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Wait did not fail at once")
	}
}

func TestWaitTimesOutWithWhatItWaitedOn(t *testing.T) {
	a, _ := newApplier()
	s := fixedSpec()
	mustApply(t, a, s)
	err := a.Wait(context.Background(), s, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not done after 50ms") || !strings.Contains(err.Error(), "0 of 1 replicas updated") {
		t.Errorf("Wait = %v", err)
	}
}

func TestWaitNoticesAnotherVersion(t *testing.T) {
	a, _ := newApplier()
	s := fixedSpec()
	newer := fixedSpec()
	newer.Version = 4
	mustApply(t, a, newer)
	err := a.Wait(context.Background(), s, time.Second)
	if err == nil || !strings.Contains(err.Error(), "now runs version 4, not 3") {
		t.Errorf("Wait = %v", err)
	}
	missing := fixedSpec()
	missing.Model = "absent"
	if err := a.Wait(context.Background(), missing, time.Second); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Wait(missing) = %v", err)
	}
}

func TestRolloutStatus(t *testing.T) {
	two := int32(2)
	cases := []struct {
		name       string
		generation int64
		st         appsv1.DeploymentStatus
		done       bool
		msg        string
	}{
		{"new spec not observed", 2, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, false, "waiting for the deployment controller"},
		{"surging", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2}, false, "1 of 2 replicas updated"},
		{"old pods left", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}, false, "1 old replicas pending termination"},
		{"not available", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1}, false, "1 of 2 updated replicas available"},
		{"done", 1, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, true, "2 of 2 replicas available"},
	}
	for _, c := range cases {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: c.generation}, Spec: appsv1.DeploymentSpec{Replicas: &two}, Status: c.st}
		got := rolloutStatus(d)
		if got.Done != c.done || !strings.Contains(got.Message, c.msg) {
			t.Errorf("%s: %+v", c.name, got)
		}
	}
}

func TestDeleteKeepsTheNamespace(t *testing.T) {
	a, cs := newApplier()
	s := autoscaledSpec()
	mustApply(t, a, s)
	ctx := context.Background()
	if err := a.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, s); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if st, err := a.Status(ctx, s); err != nil || st.Found {
		t.Errorf("Status after Delete = %+v, %v", st, err)
	}
	if _, err := cs.CoreV1().Services("gyre-production").Get(ctx, "gyre-fraud-detector", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service after Delete: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "gyre-production", metav1.GetOptions{}); err != nil {
		t.Errorf("namespace after Delete: %v", err)
	}
}

func TestModelsShareTheEnvironmentNamespace(t *testing.T) {
	a, cs := newApplier()
	fraud := autoscaledSpec() // has extra labels
	churn := fixedSpec()
	churn.Environment, churn.Namespace = "production", ""
	mustApply(t, a, fraud)
	mustApply(t, a, churn)
	ns, err := cs.CoreV1().Namespaces().Get(context.Background(), "gyre-production", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{LabelManagedBy: "gyre", LabelEnvironment: "production"}
	if !equality.Semantic.DeepEqual(ns.Labels, want) {
		t.Errorf("namespace labels = %v, want %v", ns.Labels, want)
	}
	list, err := cs.AppsV1().Deployments("gyre-production").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Errorf("deployments = %d (%v), want one per model", len(list.Items), err)
	}
}

func TestWaitStopsWithItsContext(t *testing.T) {
	a, _ := newApplier()
	s := fixedSpec()
	mustApply(t, a, s)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := a.Wait(ctx, s, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(cancelled) = %v", err)
	}
}
