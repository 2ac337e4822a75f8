package registry

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gyreml/gyre/pkg/events"
	eventsv1 "github.com/gyreml/gyre/pkg/pb/gyre/events/v1"
	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
	"github.com/gyreml/gyre/pkg/server"
)

// ConsumedSubjects are the other services' events the registry turns into
// lineage (and, for deployments, audit records).
var ConsumedSubjects = []string{"gyre.dataset.version.validated", "gyre.deployment.>"}

// auditedDeploymentChanges are the rollout events a person answers for.
var auditedDeploymentChanges = map[string]string{
	"started": "StartDeployment", "approved": "ApproveDeployment", "rolled_back": "RollbackDeployment",
	"succeeded": "CompleteDeployment", "failed": "FailDeployment",
}

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
	if what, ok := strings.CutPrefix(ev.Subject, "gyre.deployment."); ok {
		var e eventsv1.DeploymentChanged
		if err := ev.Decode(&e); err != nil {
			return fmt.Errorf("decode %s: %w", ev.Subject, err)
		}
		return recordDeployment(ctx, tx, what, &e)
	}
	return nil
}

// recordDeployment links a rollout into the lineage graph (model version
// -deployed_as-> deployment) and audits what people and the deployer did.
func recordDeployment(ctx context.Context, tx pgx.Tx, what string, e *eventsv1.DeploymentChanged) error {
	node := "deployment:" + e.GetDeployment()
	if err := upsertNode(ctx, tx, node, map[string]any{
		"environment": e.GetEnvironment(), "strategy": e.GetStrategy(), "state": e.GetState(),
		"previous_version": strconv.FormatInt(e.GetPreviousVersion(), 10),
	}); err != nil {
		return err
	}
	edge := &registryv1.LineageEdge{From: fmt.Sprintf("model:%s@%d", e.GetModel(), e.GetVersion()), To: node, Relation: "deployed_as"}
	if err := insertEdges(ctx, tx, []*registryv1.LineageEdge{edge}); err != nil {
		return err
	}
	action, ok := auditedDeploymentChanges[what]
	if !ok {
		return nil
	}
	details := map[string]any{"deployment": e.GetDeployment(), "environment": e.GetEnvironment(), "strategy": e.GetStrategy(),
		"state": e.GetState(), "previous_version": e.GetPreviousVersion()}
	if e.GetReason() != "" {
		details["reason"] = e.GetReason()
	}
	ri := server.RequestInfo{Actor: e.GetActor(), ID: e.GetDeployment()}
	return appendAudit(ctx, tx, ri, action, fmt.Sprintf("models/%s/versions/%d", e.GetModel(), e.GetVersion()), details)
}

func upsertNode(ctx context.Context, tx pgx.Tx, id string, attrs map[string]any) error {
	_, err := tx.Exec(ctx, `INSERT INTO lineage_nodes (id, attributes) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET attributes = lineage_nodes.attributes || excluded.attributes, update_time = now()`, id, jsonb(attrs))
	if err != nil {
		return fmt.Errorf("upsert lineage node %s: %w", id, err)
	}
	return nil
}
