-- The registry: models, versions, aliases with history, pipelines, lineage, audit.

CREATE TABLE models (
    name           text PRIMARY KEY,
    description    text NOT NULL DEFAULT '',
    tags           jsonb NOT NULL DEFAULT '{}',
    latest_version bigint NOT NULL DEFAULT 0,
    create_time    timestamptz NOT NULL DEFAULT now(),
    update_time    timestamptz NOT NULL DEFAULT now(),
    revision       bigint NOT NULL DEFAULT 1
);

CREATE TABLE model_versions (
    model           text NOT NULL REFERENCES models (name),
    version         bigint NOT NULL,
    artifact_uri    text NOT NULL,
    artifact_sha256 text NOT NULL,
    size_bytes      bigint NOT NULL DEFAULT 0,
    format          text NOT NULL DEFAULT '',
    params          jsonb NOT NULL DEFAULT '{}',
    metrics         jsonb NOT NULL DEFAULT '{}',
    tags            jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'registered',
    status_reason   text NOT NULL DEFAULT '',
    lineage         jsonb NOT NULL DEFAULT '{}',
    -- A training job registers at most one version of a model, however often it retries.
    training_job    text,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    revision        bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (model, version)
);
CREATE UNIQUE INDEX model_versions_job ON model_versions (model, training_job) WHERE training_job IS NOT NULL;
CREATE INDEX model_versions_sha ON model_versions (model, artifact_sha256);

CREATE TABLE aliases (
    model       text NOT NULL,
    alias       text NOT NULL,
    version     bigint NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT '',
    revision    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

CREATE TABLE alias_history (
    id           bigserial PRIMARY KEY,
    model        text NOT NULL,
    alias        text NOT NULL,
    from_version bigint NOT NULL DEFAULT 0,
    to_version   bigint NOT NULL,
    change_time  timestamptz NOT NULL DEFAULT now(),
    changed_by   text NOT NULL DEFAULT '',
    reason       text NOT NULL DEFAULT ''
);
CREATE INDEX alias_history_model ON alias_history (model, alias, id);

CREATE TABLE pipelines (
    name        text NOT NULL,
    version     bigint NOT NULL,
    model       text NOT NULL,
    dataset     text NOT NULL,
    spec        jsonb NOT NULL,
    digest      text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT '',
    PRIMARY KEY (name, version)
);

CREATE TABLE lineage_edges (
    from_node   text NOT NULL,
    to_node     text NOT NULL,
    relation    text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (from_node, to_node, relation)
);
CREATE INDEX lineage_edges_to ON lineage_edges (to_node);

-- Append-only and hash-chained: hash = sha256 over prev_hash and the row's
-- fields (see services/registry/audit.go); audit_head holds the chain's tip so
-- that a deleted last row is detected too.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY,
    time       timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    resource   text NOT NULL,
    request_id text NOT NULL,
    details    text NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);
CREATE INDEX audit_log_resource ON audit_log (resource, seq);

CREATE TABLE audit_head (
    id   int PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
