-- The evaluator: one row per evaluation of a model version.
CREATE TABLE evaluations (
    id               uuid PRIMARY KEY,
    model            text NOT NULL,
    version          bigint NOT NULL,
    state            text NOT NULL DEFAULT 'pending',
    reasons          jsonb NOT NULL DEFAULT '[]',
    metrics          jsonb NOT NULL DEFAULT '{}',
    gates            jsonb NOT NULL DEFAULT '[]',
    dataset          text NOT NULL DEFAULT '',
    dataset_version  bigint NOT NULL DEFAULT 0,
    holdout_rows     bigint NOT NULL DEFAULT 0,
    champion_version bigint NOT NULL DEFAULT 0,
    report_sha256    text NOT NULL DEFAULT '',
    html_sha256      text NOT NULL DEFAULT '',
    create_time      timestamptz NOT NULL DEFAULT now(),
    start_time       timestamptz,
    end_time         timestamptz
);
CREATE INDEX evaluations_pending ON evaluations (create_time) WHERE state = 'pending';
CREATE INDEX evaluations_model ON evaluations (model, version);
