package deployer

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/kubernetes"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/kube"
	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	inferencepb "github.com/gyreml/gyre/pkg/pb/inference"
)

// Kubernetes runs each model's inference pods in a namespace per
// environment: a new version replaces the old by a rolling update of the
// model's Deployment, so it has no canary weights or shadows (Gradual is
// false; those strategies deploy directly on this target).
type Kubernetes struct {
	applier *kube.Applier
	cfg     config.Kubernetes

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewKubernetes drives the cluster client reaches.
func NewKubernetes(client kubernetes.Interface, cfg config.Kubernetes) *Kubernetes {
	return &Kubernetes{applier: &kube.Applier{Client: client, FieldManager: kube.DefaultFieldManager}, cfg: cfg, conns: map[string]*grpc.ClientConn{}}
}

// Apply server-side-applies the version's workload and waits for its
// rollout; a route without a stable version deletes the model's workload.
func (k *Kubernetes) Apply(ctx context.Context, r route, _ bool) error {
	if r.Stable.Version == 0 {
		return k.applier.Delete(ctx, kube.Spec{Model: r.Model, Environment: r.Env, Namespace: k.cfg.NamespacePrefix + r.Env})
	}
	spec := kube.NewSpec(k.cfg, r.Env, r.Model, r.Stable.Version, r.Stable.URI, r.Stable.SHA256)
	if err := k.applier.Apply(ctx, spec); err != nil {
		return err
	}
	return k.applier.Wait(ctx, spec, k.cfg.RolloutTimeout)
}

// Manifests renders what Apply would apply for the version, as YAML.
func (k *Kubernetes) Manifests(env, model string, stable ref) ([]byte, error) {
	return kube.RenderYAML(kube.NewSpec(k.cfg, env, model, stable.Version, stable.URI, stable.SHA256))
}

// Stats: the pods' traffic is in Prometheus, not kept per route here.
func (k *Kubernetes) Stats(context.Context, string, string) ([]*inferencev1.VersionStats, error) {
	return nil, nil
}

func (k *Kubernetes) Gradual() bool { return false }

// Infer reaches the model's Service in the environment's namespace (the
// deployer runs in the cluster).
func (k *Kubernetes) Infer(env, model string) Predictor {
	addr := net.JoinHostPort(fmt.Sprintf("%s.%s%s.svc", kube.ObjectName(model), k.cfg.NamespacePrefix, env), strconv.Itoa(kube.GRPCPort))
	k.mu.Lock()
	defer k.mu.Unlock()
	conn, ok := k.conns[addr]
	if !ok {
		var err error
		if conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return failing{err}
		}
		k.conns[addr] = conn
	}
	return oipPredictor{client: inferencepb.NewGRPCInferenceServiceClient(conn), env: env, model: model}
}

type failing struct{ err error }

func (f failing) Predict(context.Context, []model.Input, []model.Row) ([]model.Prediction, int64, error) {
	return nil, 0, f.err
}
