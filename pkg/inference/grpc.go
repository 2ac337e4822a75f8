package inference

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/gyreml/gyre/pkg/apierr"
	"github.com/gyreml/gyre/pkg/model"
	inferencepb "github.com/gyreml/gyre/pkg/pb/inference"
)

// GRPC is inference.GRPCInferenceService over this server. A request's
// environment is its gyre-environment metadata (production when absent);
// model_version, when given, must be the route's stable, canary or shadow.
func (s *Server) GRPC() inferencepb.GRPCInferenceServiceServer { return &grpcService{s: s} }

type grpcService struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// status maps an error to a gRPC status error (apierr's one mapping), so
// the service answers alike with or without Gyre's interceptors.
func (g *grpcService) status(ctx context.Context, err error) error {
	return apierr.Status(ctx, g.s.log, err).Err()
}

func environmentOf(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(EnvironmentMetadata); len(v) > 0 && v[0] != "" {
		if err := checkEnvironment(v[0]); err != nil {
			return "", apierr.InvalidField(EnvironmentMetadata, "%q is not an environment (production or staging)", v[0])
		}
		return v[0], nil
	}
	return Production, nil
}

func routingKeyOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(HeaderRoutingKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (g *grpcService) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: g.s.ready.Load()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: "gyre", Version: g.s.version, Extensions: []string{}}, nil
}

func (g *grpcService) ModelReady(ctx context.Context, req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	if _, err := g.target(ctx, req.GetName(), req.GetVersion()); err != nil {
		return nil, g.status(ctx, err)
	}
	return &inferencepb.ModelReadyResponse{Ready: true}, nil
}

func (g *grpcService) ModelMetadata(ctx context.Context, req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	rt, err := g.target(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, g.status(ctx, err)
	}
	t, _ := rt.describe(req.GetVersion())
	md := metadataOf(rt, t)
	resp := &inferencepb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform}
	for _, in := range md.Inputs {
		resp.Inputs = append(resp.Inputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape})
	}
	for _, out := range md.Outputs {
		resp.Outputs = append(resp.Outputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: out.Name, Datatype: out.Datatype, Shape: out.Shape})
	}
	return resp, nil
}

// target finds the route of a metadata or readiness request and checks
// that it has the version asked for.
func (g *grpcService) target(ctx context.Context, name, version string) (*route, error) {
	env, err := environmentOf(ctx)
	if err != nil {
		return nil, err
	}
	rt, err := g.s.lookup(env, name)
	if err != nil {
		return nil, err
	}
	if _, err := rt.describe(version); err != nil {
		return nil, err
	}
	return rt, nil
}

func (g *grpcService) ModelInfer(ctx context.Context, req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	start := time.Now()
	s := g.s
	env, err := environmentOf(ctx)
	if err != nil {
		return nil, g.status(ctx, err)
	}
	rt, err := s.lookup(env, req.GetModelName())
	if err != nil {
		s.unanswered(env, nil, nil, start, http.StatusNotFound)
		return nil, g.status(ctx, err)
	}
	t, err := rt.choose(req.GetModelVersion(), routingKeyOf(ctx))
	if err != nil {
		s.unanswered(env, rt, nil, start, http.StatusNotFound)
		return nil, g.status(ctx, err)
	}
	id := predictionID(req.GetId())
	var names []string
	for _, o := range req.GetOutputs() {
		names = append(names, o.GetName())
	}
	outs, err := t.m.outputsOf(names)
	var rows []model.Row
	var preds []model.Prediction
	if err == nil {
		var ts []inputTensor
		if ts, err = tensorsOf(req); err == nil {
			rows, err = t.m.rows(ts)
		}
	}
	if err == nil {
		preds, err = t.predict(rows)
	}
	if err != nil {
		code := httpStatus(err)
		if code == http.StatusInternalServerError {
			s.log.Error("inference failed", "model", rt.model, "version", t.version, "environment", rt.env, "err", err)
		}
		s.answered(rt, t, req.GetModelVersion() == "", id, start, nil, nil, code, err)
		return nil, g.status(ctx, err)
	}
	resp := &inferencepb.ModelInferResponse{ModelName: rt.model, ModelVersion: t.versionStr, Id: id,
		Parameters: map[string]*inferencepb.InferParameter{
			"environment": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: rt.env}},
			"role":        {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: t.role}},
		}}
	addOutputs(resp, outs, len(t.m.classes), preds, len(req.GetRawInputContents()) > 0)
	s.answered(rt, t, req.GetModelVersion() == "", id, start, rows, preds, http.StatusOK, nil)
	return resp, nil
}

// tensorsOf reads the request's tensors from their typed contents, or from
// raw_input_contents (little-endian, BYTES elements length-prefixed).
func tensorsOf(req *inferencepb.ModelInferRequest) ([]inputTensor, error) {
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, apierr.InvalidField("raw_input_contents", "%d entries for %d inputs", len(raw), len(req.GetInputs()))
	}
	ts := make([]inputTensor, len(req.GetInputs()))
	for i, in := range req.GetInputs() {
		t := &ts[i]
		t.name, t.datatype, t.shape = in.GetName(), in.GetDatatype(), in.GetShape()
		if err := checkDatatype(t); err != nil {
			return nil, err
		}
		if len(raw) > 0 {
			if in.GetContents() != nil {
				return nil, inputError(t.name, "contents given with raw_input_contents: use one or the other")
			}
			if err := decodeRaw(t, raw[i]); err != nil {
				return nil, err
			}
			continue
		}
		c := in.GetContents()
		switch t.datatype {
		case dtFP64:
			t.nums = c.GetFp64Contents()
		case dtFP32:
			t.nums = widen(c.GetFp32Contents())
		case dtInt64:
			t.nums = widen(c.GetInt64Contents())
		case dtInt32, "INT16", "INT8":
			t.nums = widen(c.GetIntContents())
		case "UINT64":
			t.nums = widen(c.GetUint64Contents())
		case "UINT32", "UINT16", "UINT8":
			t.nums = widen(c.GetUintContents())
		case dtBool:
			for _, b := range c.GetBoolContents() {
				t.nums = append(t.nums, boolFloat(b))
			}
		case dtBytes:
			t.strs = make([]string, len(c.GetBytesContents()))
			for k, b := range c.GetBytesContents() {
				t.strs[k] = string(b)
			}
		}
	}
	return ts, nil
}

func widen[T int32 | int64 | uint32 | uint64 | float32](xs []T) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// rawSizes are the bytes of one raw element of each numeric data type.
var rawSizes = map[string]int{dtFP64: 8, dtInt64: 8, "UINT64": 8, dtFP32: 4, dtInt32: 4, "UINT32": 4, "INT16": 2, "UINT16": 2,
	"INT8": 1, "UINT8": 1, dtBool: 1}

// decodeRaw reads one tensor's raw contents.
func decodeRaw(t *inputTensor, b []byte) error {
	if t.datatype == dtBytes {
		for len(b) > 0 {
			if len(b) < 4 {
				return inputError(t.name, "raw BYTES contents: truncated length prefix")
			}
			n := binary.LittleEndian.Uint32(b)
			if uint64(n) > uint64(len(b)-4) {
				return inputError(t.name, "raw BYTES contents: element of %d bytes, %d left", n, len(b)-4)
			}
			t.strs = append(t.strs, string(b[4:4+n]))
			b = b[4+n:]
		}
		return nil
	}
	size := rawSizes[t.datatype]
	if len(b)%size != 0 {
		return inputError(t.name, "raw contents of %d bytes is not a whole number of %s elements", len(b), t.datatype)
	}
	t.nums = make([]float64, len(b)/size)
	for i := range t.nums {
		e := b[i*size : (i+1)*size]
		var f float64
		switch t.datatype {
		case dtFP64:
			f = math.Float64frombits(binary.LittleEndian.Uint64(e))
		case dtInt64:
			f = float64(int64(binary.LittleEndian.Uint64(e)))
		case "UINT64":
			f = float64(binary.LittleEndian.Uint64(e))
		case dtFP32:
			f = float64(math.Float32frombits(binary.LittleEndian.Uint32(e)))
		case dtInt32:
			f = float64(int32(binary.LittleEndian.Uint32(e)))
		case "UINT32":
			f = float64(binary.LittleEndian.Uint32(e))
		case "INT16":
			f = float64(int16(binary.LittleEndian.Uint16(e)))
		case "UINT16":
			f = float64(binary.LittleEndian.Uint16(e))
		case "INT8":
			f = float64(int8(e[0]))
		case "UINT8":
			f = float64(e[0])
		case dtBool:
			f = boolFloat(e[0] != 0)
		default:
			return fmt.Errorf("raw contents: unhandled datatype %s", t.datatype)
		}
		t.nums[i] = f
	}
	return nil
}

// addOutputs writes the predictions as typed contents, or as raw contents
// when the request came raw.
func addOutputs(resp *inferencepb.ModelInferResponse, outs outputSet, classes int, preds []model.Prediction, raw bool) {
	n := int64(len(preds))
	f64 := func(name string, shape []int64, vals []float64) {
		o := &inferencepb.ModelInferResponse_InferOutputTensor{Name: name, Datatype: dtFP64, Shape: shape}
		if raw {
			b := make([]byte, 8*len(vals))
			for i, v := range vals {
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
			}
			resp.RawOutputContents = append(resp.RawOutputContents, b)
		} else {
			o.Contents = &inferencepb.InferTensorContents{Fp64Contents: vals}
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	if outs.label {
		o := &inferencepb.ModelInferResponse_InferOutputTensor{Name: outputLabel, Datatype: dtBytes, Shape: []int64{n}}
		labels := make([][]byte, len(preds))
		for i := range preds {
			labels[i] = []byte(preds[i].Label)
		}
		if raw {
			var b []byte
			for _, l := range labels {
				b = binary.LittleEndian.AppendUint32(b, uint32(len(l)))
				b = append(b, l...)
			}
			resp.RawOutputContents = append(resp.RawOutputContents, b)
		} else {
			o.Contents = &inferencepb.InferTensorContents{BytesContents: labels}
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	if outs.probabilities {
		vals := make([]float64, 0, len(preds)*classes)
		for i := range preds {
			for c := range classes {
				p := math.NaN()
				if c < len(preds[i].Probabilities) {
					p = preds[i].Probabilities[c]
				}
				vals = append(vals, p)
			}
		}
		f64(outputProbabilities, []int64{n, int64(classes)}, vals)
	}
	if outs.value {
		vals := make([]float64, len(preds))
		for i := range preds {
			vals[i] = preds[i].Value
		}
		f64(outputValue, []int64{n}, vals)
	}
}
