package registry

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

// ConsumedSubjects are the other services' events the registry turns into
// lineage.
var ConsumedSubjects = []string{"gyre.dataset.version.validated"}

// HandleEvent records what an event says about lineage, in the consumer's
// transaction (so a redelivered event changes nothing twice).
func (s *Service) HandleEvent(ctx context.Context, tx pgx.Tx, ev events.Event) error {
	switch ev.Subject {
	case "gyre.dataset.version.validated":
		var e eventsv1.DatasetVersionValidated
		if err := ev.Decode(&e); err != nil {
			return fmt.Errorf("decode %s: %w", ev.Subject, err)
		}
		node := "dataset:" + e.GetDataset() + "@" + strconv.FormatInt(e.GetVersion(), 10)
		if err := upsertNode(ctx, tx, node, map[string]any{
			"sha256": e.GetSha256(), "rows": strconv.FormatInt(e.GetRows(), 10), "report_sha256": e.GetReportSha256(),
			"uri": e.GetUri(), "privacy_action": e.GetPrivacyAction(),
		}); err != nil {
			return err
		}
		return insertEdges(ctx, tx, []*registryv1.LineageEdge{{From: "dataset:" + e.GetDataset(), To: node, Relation: "version"}})
	}
	return nil
}

func upsertNode(ctx context.Context, tx pgx.Tx, id string, attrs map[string]any) error {
	_, err := tx.Exec(ctx, `INSERT INTO lineage_nodes (id, attributes) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET attributes = lineage_nodes.attributes || excluded.attributes, update_time = now()`, id, jsonb(attrs))
	if err != nil {
		return fmt.Errorf("upsert lineage node %s: %w", id, err)
	}
	return nil
}
