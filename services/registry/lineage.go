package registry

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/apierr"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// maxLineageDepth bounds a walk even when edges recorded by hand form a cycle.
const maxLineageDepth = 100

func insertEdges(ctx context.Context, tx pgx.Tx, edges []*registryv1.LineageEdge) error {
	for _, e := range edges {
		if _, err := tx.Exec(ctx, `INSERT INTO lineage_edges (from_node, to_node, relation) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			e.GetFrom(), e.GetTo(), e.GetRelation()); err != nil {
			return fmt.Errorf("insert lineage edge: %w", err)
		}
	}
	return nil
}

// RecordLineage lets other services add edges (a deployment of a version, a
// dataset exported from production traffic ...).
func (s *Service) RecordLineage(ctx context.Context, req *registryv1.RecordLineageRequest) (*registryv1.RecordLineageResponse, error) {
	err := s.mutate(ctx, func(tx pgx.Tx) (*change, error) {
		if err := insertEdges(ctx, tx, req.GetEdges()); err != nil {
			return nil, err
		}
		var desc []string
		for _, e := range req.GetEdges() {
			desc = append(desc, e.GetFrom()+" -"+e.GetRelation()+"-> "+e.GetTo())
		}
		return &change{action: "RecordLineage", resource: "lineage", details: map[string]any{"edges": desc}}, nil
	})
	if err != nil {
		return nil, err
	}
	return &registryv1.RecordLineageResponse{Recorded: int32(len(req.GetEdges()))}, nil
}

// GetLineage walks the graph from a node upstream (where it came from),
// downstream (what it led to) or both.
func (s *Service) GetLineage(ctx context.Context, req *registryv1.GetLineageRequest) (*registryv1.Lineage, error) {
	depth := int(req.GetDepth())
	if depth == 0 || depth > maxLineageDepth {
		depth = maxLineageDepth
	}
	dir := req.GetDirection()
	edges := map[string]*registryv1.LineageEdge{}
	if dir != registryv1.LineageDirection_LINEAGE_DIRECTION_DOWNSTREAM {
		if err := s.walk(ctx, req.GetNode(), depth, "to_node", "from_node", edges); err != nil {
			return nil, err
		}
	}
	if dir != registryv1.LineageDirection_LINEAGE_DIRECTION_UPSTREAM {
		if err := s.walk(ctx, req.GetNode(), depth, "from_node", "to_node", edges); err != nil {
			return nil, err
		}
	}
	if len(edges) == 0 {
		var known bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lineage_nodes WHERE id = $1)`, req.GetNode()).Scan(&known); err != nil {
			return nil, err
		}
		if !known {
			return nil, apierr.NotFound("no lineage recorded for node %q", req.GetNode())
		}
	}
	out := &registryv1.Lineage{Root: req.GetNode()}
	ids := map[string]bool{req.GetNode(): true}
	keys := make([]string, 0, len(edges))
	for k := range edges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := edges[k]
		out.Edges = append(out.Edges, e)
		ids[e.GetFrom()], ids[e.GetTo()] = true, true
	}
	nodes, err := s.describeNodes(ctx, ids)
	if err != nil {
		return nil, err
	}
	out.Nodes = nodes
	return out, nil
}

// walk follows edges whose `near` column matches the frontier to their `far` end.
func (s *Service) walk(ctx context.Context, root string, depth int, near, far string, into map[string]*registryv1.LineageEdge) error {
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`WITH RECURSIVE walk (from_node, to_node, relation, depth) AS (
			SELECT from_node, to_node, relation, 1 FROM lineage_edges WHERE %[1]s = $1
			UNION
			SELECT e.from_node, e.to_node, e.relation, w.depth + 1
			FROM lineage_edges e JOIN walk w ON e.%[1]s = w.%[2]s WHERE w.depth < $2
		) SELECT DISTINCT from_node, to_node, relation FROM walk`, near, far), root, depth)
	if err != nil {
		return fmt.Errorf("walk lineage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e registryv1.LineageEdge
		if err := rows.Scan(&e.From, &e.To, &e.Relation); err != nil {
			return err
		}
		into[e.From+"\x00"+e.To+"\x00"+e.Relation] = &e
	}
	return rows.Err()
}

// describeNodes adds what the registry knows about each node (model versions).
func (s *Service) describeNodes(ctx context.Context, ids map[string]bool) ([]*registryv1.LineageNode, error) {
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	var nodes []*registryv1.LineageNode
	for _, id := range sorted {
		kind, ref, _ := strings.Cut(id, ":")
		n := &registryv1.LineageNode{Id: id, Kind: kind, Attributes: map[string]string{}}
		var attrs map[string]string
		err := s.pool.QueryRow(ctx, `SELECT attributes FROM lineage_nodes WHERE id = $1`, id).Scan(&attrs)
		if err != nil && err != pgx.ErrNoRows {
			return nil, err
		}
		maps.Copy(n.Attributes, attrs)
		if kind == "model" {
			name, ver, ok := strings.Cut(ref, "@")
			if ok {
				var sha, status string
				err := s.pool.QueryRow(ctx, `SELECT artifact_sha256, status FROM model_versions WHERE model = $1 AND version::text = $2`, name, ver).Scan(&sha, &status)
				if err == nil {
					n.Attributes["artifact_sha256"], n.Attributes["status"] = sha, status
				} else if err != pgx.ErrNoRows {
					return nil, err
				}
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
