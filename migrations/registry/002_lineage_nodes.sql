-- What the registry knows about lineage nodes owned by other services
-- (dataset versions, jobs, deployments), learned from their events.
CREATE TABLE lineage_nodes (
    id          text PRIMARY KEY,
    attributes  jsonb NOT NULL DEFAULT '{}',
    update_time timestamptz NOT NULL DEFAULT now()
);
