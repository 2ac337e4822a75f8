package deployer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	inferencepb "github.com/gyreml/gyre/pkg/pb/inference"
)

// Local is Gyre's own inference target, driven over its control API; it
// splits traffic, so canary and shadow rollouts run on it.
type Local struct {
	control inferencev1.InferenceControlServiceClient
	oip     inferencepb.GRPCInferenceServiceClient
}

// NewLocal drives the inference target reachable through conn.
func NewLocal(conn grpc.ClientConnInterface) *Local {
	return &Local{control: inferencev1.NewInferenceControlServiceClient(conn), oip: inferencepb.NewGRPCInferenceServiceClient(conn)}
}

func (l *Local) Apply(ctx context.Context, r route, resetStats bool) error {
	if r.Stable.Version == 0 {
		_, err := l.control.DeleteRoute(ctx, &inferencev1.DeleteRouteRequest{Environment: r.Env, Model: r.Model})
		return err
	}
	_, err := l.control.SetRoute(ctx, &inferencev1.SetRouteRequest{Route: r.proto(), ResetStats: resetStats})
	return err
}

func (l *Local) Stats(ctx context.Context, env, model string) ([]*inferencev1.VersionStats, error) {
	resp, err := l.control.GetStats(ctx, &inferencev1.GetStatsRequest{Environment: env, Model: model})
	if err != nil {
		return nil, err
	}
	return resp.GetVersions(), nil
}

func (l *Local) Gradual() bool { return true }

func (l *Local) Infer(env, model string) Predictor {
	return oipPredictor{client: l.oip, env: env, model: model}
}

// oipPredictor asks an Open Inference Protocol endpoint, as any KServe
// client would: one tensor per model input.
type oipPredictor struct {
	client inferencepb.GRPCInferenceServiceClient
	env    string
	model  string
}

// EnvironmentHeader picks the environment of a gRPC inference request.
const EnvironmentHeader = "gyre-environment"

func (p oipPredictor) Predict(ctx context.Context, inputs []model.Input, rows []model.Row) ([]model.Prediction, int64, error) {
	req := &inferencepb.ModelInferRequest{ModelName: p.model}
	n := int64(len(rows))
	for j, in := range inputs {
		t := &inferencepb.ModelInferRequest_InferInputTensor{Name: in.Name, Shape: []int64{n}, Contents: &inferencepb.InferTensorContents{}}
		if in.Kind == model.Categorical {
			t.Datatype = "BYTES"
			for _, r := range rows {
				t.Contents.BytesContents = append(t.Contents.BytesContents, []byte(r[j].S))
			}
		} else {
			t.Datatype = "FP64"
			for _, r := range rows {
				v := r[j].F
				if r[j].Null {
					v = math.NaN()
				}
				t.Contents.Fp64Contents = append(t.Contents.Fp64Contents, v)
			}
		}
		req.Inputs = append(req.Inputs, t)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, EnvironmentHeader, p.env)
	resp, err := p.client.ModelInfer(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	version, err := strconv.ParseInt(resp.GetModelVersion(), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("model_version %q is not a version number", resp.GetModelVersion())
	}
	out := make([]model.Prediction, len(rows))
	for i, t := range resp.GetOutputs() {
		var f64 []float64
		if c := t.GetContents(); c != nil {
			f64 = c.GetFp64Contents()
		}
		if raw := resp.GetRawOutputContents(); len(raw) > i && len(f64) == 0 && t.GetDatatype() == "FP64" {
			for b := raw[i]; len(b) >= 8; b = b[8:] {
				f64 = append(f64, math.Float64frombits(binary.LittleEndian.Uint64(b)))
			}
		}
		switch t.GetName() {
		case "label":
			for k, b := range t.GetContents().GetBytesContents() {
				if k < len(out) {
					out[k].Label = string(b)
				}
			}
		case "value":
			for k, v := range f64 {
				if k < len(out) {
					out[k].Value = v
				}
			}
		case "probabilities":
			if len(rows) == 0 || len(f64)%len(rows) != 0 {
				return nil, 0, fmt.Errorf("probabilities: %d values for %d rows", len(f64), len(rows))
			}
			width := len(f64) / len(rows)
			for k := range out {
				out[k].Probabilities = f64[k*width : (k+1)*width]
			}
		}
	}
	return out, version, nil
}
