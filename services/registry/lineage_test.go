package registry_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func TestLineageUpstreamAndDownstream(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateModelVersion(ctx, &registryv1.CreateModelVersionRequest{Model: "m", ArtifactUri: "s3://gyre/m1", ArtifactSha256: sha("m1"),
		Lineage: &registryv1.VersionLineage{Dataset: "loans", DatasetVersion: 3, DatasetDigest: sha("rows"), Pipeline: "m", PipelineVersion: 1, TrainingJob: "j1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecordLineage(ctx, &registryv1.RecordLineageRequest{Edges: []*registryv1.LineageEdge{
		{From: "model:m@1", To: "deployment:d1", Relation: "deployed_as"},
	}}); err != nil {
		t.Fatal(err)
	}

	up, err := c.GetLineage(ctx, &registryv1.GetLineageRequest{Node: "deployment:d1", Direction: registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM})
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeIDs(up); !slices.Equal(got, []string{"dataset:loans@3", "deployment:d1", "job:j1", "model:m@1", "pipeline:m@1"}) {
		t.Fatalf("upstream of the deployment = %v", got)
	}
	for _, n := range up.GetNodes() {
		if n.GetId() == "model:m@1" && n.GetAttributes()["artifact_sha256"] != sha("m1") {
			t.Fatalf("model node lacks its digest: %v", n)
		}
	}
	down, err := c.GetLineage(ctx, &registryv1.GetLineageRequest{Node: "dataset:loans@3", Direction: registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM})
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeIDs(down); !slices.Equal(got, []string{"dataset:loans@3", "deployment:d1", "job:j1", "model:m@1"}) {
		t.Fatalf("downstream of the dataset = %v", got)
	}
	one, err := c.GetLineage(ctx, &registryv1.GetLineageRequest{Node: "dataset:loans@3", Direction: registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM, Depth: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeIDs(one); !slices.Equal(got, []string{"dataset:loans@3", "job:j1"}) {
		t.Fatalf("depth 1 = %v", got)
	}
}

func TestLineageOfAnUnknownNodeIsNotFound(t *testing.T) {
	c, _ := newClient(t)
	_, err := c.GetLineage(context.Background(), &registryv1.GetLineageRequest{Node: "model:ghost@1"})
	wantCode(t, err, codes.NotFound)
}

func nodeIDs(l *registryv1.Lineage) []string {
	var ids []string
	for _, n := range l.GetNodes() {
		ids = append(ids, n.GetId())
	}
	return ids
}
