package inference

import (
	"context"
	"encoding/binary"
	"math"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gyreml/gyre/pkg/model"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
	inferencepb "github.com/gyreml/gyre/pkg/pb/inference"
)

// grpcClients serves the OIP and control services on a loopback listener.
func grpcClients(t *testing.T, s testServer) (inferencepb.GRPCInferenceServiceClient, inferencev1.InferenceControlServiceClient) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	inferencepb.RegisterGRPCInferenceServiceServer(g, s.GRPC())
	inferencev1.RegisterInferenceControlServiceServer(g, s.Control())
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return inferencepb.NewGRPCInferenceServiceClient(conn), inferencev1.NewInferenceControlServiceClient(conn)
}

func TestServiceNameIsUpstreams(t *testing.T) {
	if got := inferencepb.GRPCInferenceService_ServiceDesc.ServiceName; got != "inference.GRPCInferenceService" {
		t.Errorf("service name %q", got)
	}
	var methods []string
	for _, m := range inferencepb.GRPCInferenceService_ServiceDesc.Methods {
		methods = append(methods, m.MethodName)
	}
	slices.Sort(methods)
	if got := strings.Join(methods, " "); got != "ModelInfer ModelMetadata ModelReady ServerLive ServerMetadata ServerReady" {
		t.Errorf("methods %s", got)
	}
}

// perInputRequest is threeModelRows as one typed tensor per input.
func perInputRequest() *inferencepb.ModelInferRequest {
	return &inferencepb.ModelInferRequest{ModelName: "credit", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
		{Name: "x0", Datatype: "FP64", Shape: []int64{3}, Contents: &inferencepb.InferTensorContents{Fp64Contents: []float64{0.5, -1.25, 2}}},
		{Name: "x1", Datatype: "INT32", Shape: []int64{3, 1}, Contents: &inferencepb.InferTensorContents{IntContents: []int32{1, 0, 0}}},
		{Name: "color", Datatype: "BYTES", Shape: []int64{3}, Contents: &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("red"), []byte("blue"), []byte("green")}}},
	}}
}

var perInputRows = []model.Row{
	{{F: 0.5}, {F: 1}, {S: "red"}},
	{{F: -1.25}, {F: 0}, {S: "blue"}},
	{{F: 2}, {F: 0}, {S: "green"}},
}

func checkGRPCAnswer(t *testing.T, resp *inferencepb.ModelInferResponse, want []model.Prediction) {
	t.Helper()
	var labels []string
	var probs, values []float64
	for i, o := range resp.GetOutputs() {
		f64 := o.GetContents().GetFp64Contents()
		if raw := resp.GetRawOutputContents(); len(raw) > 0 {
			for b := raw[i]; len(b) >= 8 && o.GetDatatype() == "FP64"; b = b[8:] {
				f64 = append(f64, math.Float64frombits(binary.LittleEndian.Uint64(b)))
			}
			if o.GetName() == "label" {
				for b := raw[i]; len(b) >= 4; {
					n := binary.LittleEndian.Uint32(b)
					labels = append(labels, string(b[4:4+n]))
					b = b[4+n:]
				}
			}
		}
		switch o.GetName() {
		case "label":
			for _, b := range o.GetContents().GetBytesContents() {
				labels = append(labels, string(b))
			}
		case "probabilities":
			probs = f64
			if !slices.Equal(o.GetShape(), []int64{int64(len(want)), 2}) {
				t.Errorf("probabilities shape %v", o.GetShape())
			}
		case "value":
			values = f64
		}
	}
	for i, w := range want {
		if i >= len(labels) || i >= len(values) || 2*i+1 >= len(probs) || labels[i] != w.Label || values[i] != w.Value || probs[2*i+1] != w.Probabilities[1] {
			t.Fatalf("row %d: labels %v values %v probabilities %v, want %+v", i, labels, values, probs, w)
		}
	}
}

func TestGRPCInfer(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	s.setRoute(t, &inferencev1.Route{Environment: Staging, Model: "credit", Stable: fixtures.v2})
	oip, _ := grpcClients(t, s)
	ctx := context.Background()
	want := s.expect(t, Production, "credit", perInputRows)

	resp, err := oip.ModelInfer(ctx, perInputRequest())
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetModelName() != "credit" || resp.GetModelVersion() != "1" || len(resp.GetId()) != 36 ||
		resp.GetParameters()["role"].GetStringParam() != RoleStable {
		t.Errorf("answer %v", resp)
	}
	checkGRPCAnswer(t, resp, want)

	// Raw contents in, raw contents out.
	raw := perInputRequest()
	raw.Id = "raw-1"
	var x0, x1, color []byte
	for _, f := range []float64{0.5, -1.25, 2} {
		x0 = binary.LittleEndian.AppendUint64(x0, math.Float64bits(f))
	}
	for _, v := range []int32{1, 0, 0} {
		x1 = binary.LittleEndian.AppendUint32(x1, uint32(v))
	}
	for _, c := range []string{"red", "blue", "green"} {
		color = binary.LittleEndian.AppendUint32(color, uint32(len(c)))
		color = append(color, c...)
	}
	for _, in := range raw.Inputs {
		in.Contents = nil
	}
	raw.RawInputContents = [][]byte{x0, x1, color}
	resp, err = oip.ModelInfer(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetId() != "raw-1" || len(resp.GetRawOutputContents()) != 3 {
		t.Errorf("raw answer %v", resp)
	}
	checkGRPCAnswer(t, resp, want)

	// One [batch, n_inputs] BYTES tensor.
	var cells [][]byte
	for _, c := range []string{"0.5", "1", "red", "-1.25", "0", "blue", "2", "0", "green"} {
		cells = append(cells, []byte(c))
	}
	resp, err = oip.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "credit", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
		{Name: "input", Datatype: "BYTES", Shape: []int64{3, 3}, Contents: &inferencepb.InferTensorContents{BytesContents: cells}}}})
	if err != nil {
		t.Fatal(err)
	}
	checkGRPCAnswer(t, resp, want)

	// The environment comes from metadata; a version must be the route's.
	staging := metadata.AppendToOutgoingContext(ctx, EnvironmentMetadata, Staging)
	if resp, err := oip.ModelInfer(staging, perInputRequest()); err != nil || resp.GetModelVersion() != "2" {
		t.Errorf("staging: %v %v", resp.GetModelVersion(), err)
	}
	versioned := perInputRequest()
	versioned.ModelVersion = "2"
	if _, err := oip.ModelInfer(ctx, versioned); status.Code(err) != codes.NotFound {
		t.Errorf("production version 2: %v, want NotFound", err)
	}
	if _, err := oip.ModelInfer(staging, versioned); err != nil {
		t.Errorf("staging version 2: %v", err)
	}
	if _, err := oip.ModelInfer(metadata.AppendToOutgoingContext(ctx, EnvironmentMetadata, "qa"), perInputRequest()); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown environment: %v", err)
	}
}

func TestGRPCRefusesBadInputNamingIt(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1})
	oip, _ := grpcClients(t, s)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		edit  func(*inferencepb.ModelInferRequest)
		code  codes.Code
		wants string
	}{
		{"unknown model", func(r *inferencepb.ModelInferRequest) { r.ModelName = "fraud" }, codes.NotFound, `model "fraud"`},
		{"missing input", func(r *inferencepb.ModelInferRequest) { r.Inputs = r.Inputs[:2] }, codes.InvalidArgument, `input "color": missing`},
		{"wrong datatype", func(r *inferencepb.ModelInferRequest) { r.Inputs[2].Datatype = "FP64" }, codes.InvalidArgument, `input "color": datatype FP64`},
		{"short contents", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Contents.Fp64Contents = []float64{1} }, codes.InvalidArgument, `input "x0": shape [3] holds 3 values, but data has 1`},
		{"raw and typed", func(r *inferencepb.ModelInferRequest) { r.RawInputContents = [][]byte{{}, {}, {}} }, codes.InvalidArgument, `input "x0": contents given with raw_input_contents`},
		{"raw count", func(r *inferencepb.ModelInferRequest) { r.RawInputContents = [][]byte{{}} }, codes.InvalidArgument, `raw_input_contents: 1 entries for 3 inputs`},
		{"unknown output", func(r *inferencepb.ModelInferRequest) {
			r.Outputs = []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}
		}, codes.InvalidArgument, `output "logits"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := perInputRequest()
			tc.edit(req)
			_, err := oip.ModelInfer(ctx, req)
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.wants) {
				t.Errorf("%v, want %v with %q", err, tc.code, tc.wants)
			}
		})
	}
}

func TestGRPCMetadataAndHealth(t *testing.T) {
	s := newServer(t, nil)
	s.setRoute(t, &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Shadow: fixtures.v2})
	oip, _ := grpcClients(t, s)
	ctx := context.Background()
	if r, err := oip.ServerLive(ctx, &inferencepb.ServerLiveRequest{}); err != nil || !r.GetLive() {
		t.Errorf("live: %v %v", r, err)
	}
	if r, err := oip.ServerReady(ctx, &inferencepb.ServerReadyRequest{}); err != nil || !r.GetReady() {
		t.Errorf("ready: %v %v", r, err)
	}
	if r, err := oip.ServerMetadata(ctx, &inferencepb.ServerMetadataRequest{}); err != nil || r.GetName() != "gyre" || r.GetVersion() != "test" {
		t.Errorf("server metadata: %v %v", r, err)
	}
	if r, err := oip.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "credit", Version: "2"}); err != nil || !r.GetReady() {
		t.Errorf("model ready: %v %v", r, err)
	}
	if _, err := oip.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "credit", Version: "3"}); status.Code(err) != codes.NotFound {
		t.Errorf("ready of an unknown version: %v", err)
	}
	md, err := oip.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "credit"})
	if err != nil {
		t.Fatal(err)
	}
	var inputs, outputs []string
	for _, in := range md.GetInputs() {
		inputs = append(inputs, in.GetName()+":"+in.GetDatatype())
	}
	for _, o := range md.GetOutputs() {
		outputs = append(outputs, o.GetName())
	}
	if strings.Join(inputs, " ") != "x0:FP64 x1:FP64 color:BYTES" || strings.Join(outputs, " ") != "label probabilities value" ||
		!slices.Equal(md.GetVersions(), []string{"1", "2"}) || md.GetPlatform() != "gyre/logistic" {
		t.Errorf("metadata %v", md)
	}
}

func TestControlService(t *testing.T) {
	s := newServer(t, nil)
	oip, control := grpcClients(t, s)
	ctx := context.Background()
	route := &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.v1, Canary: fixtures.v2, CanaryWeight: 20}
	got, err := control.SetRoute(ctx, &inferencev1.SetRouteRequest{Route: route})
	if err != nil || got.GetRoute().GetCanary().GetVersion() != 2 {
		t.Fatalf("set route: %v %v", got, err)
	}
	for range 20 {
		if _, err := oip.ModelInfer(ctx, perInputRequest()); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := control.GetStats(ctx, &inferencev1.GetStatsRequest{Environment: Production, Model: "credit"})
	if err != nil || len(stats.GetVersions()) != 2 || stats.GetVersions()[0].GetRequests()+stats.GetVersions()[1].GetRequests() != 20 {
		t.Errorf("stats %v %v", stats, err)
	}
	list, err := control.ListRoutes(ctx, &inferencev1.ListRoutesRequest{})
	if err != nil || len(list.GetRoutes()) != 1 || list.GetRoutes()[0].GetCanaryWeight() != 20 {
		t.Errorf("routes %v %v", list, err)
	}
	if _, err := control.SetRoute(ctx, &inferencev1.SetRouteRequest{Route: &inferencev1.Route{Environment: Production, Model: "credit", Stable: fixtures.tampered}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("tampered: %v, want FailedPrecondition", err)
	}
	if _, err := control.SetRoute(ctx, &inferencev1.SetRouteRequest{Route: &inferencev1.Route{Environment: Production, Model: "credit"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no stable: %v, want InvalidArgument", err)
	}
	if _, err := control.DeleteRoute(ctx, &inferencev1.DeleteRouteRequest{Environment: Production, Model: "credit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := oip.ModelInfer(ctx, perInputRequest()); status.Code(err) != codes.NotFound {
		t.Errorf("after delete: %v", err)
	}
	if _, err := control.GetStats(ctx, &inferencev1.GetStatsRequest{Environment: Production, Model: "credit"}); status.Code(err) != codes.NotFound {
		t.Errorf("stats after delete: %v", err)
	}
	if n := s.store.loaded(); n != 0 {
		t.Errorf("%d bundles in memory with no route", n)
	}
}
