-- The deployer: rollouts, and what each environment should serve.
CREATE TABLE deployments (
    id               uuid PRIMARY KEY,
    model            text NOT NULL,
    version          bigint NOT NULL,
    environment      text NOT NULL,
    strategy         text NOT NULL,
    target           text NOT NULL,
    -- pending, awaiting_approval, progressing, succeeded, rolled_back, failed
    state            text NOT NULL,
    phase            text NOT NULL DEFAULT 'deploying',
    steps            jsonb NOT NULL DEFAULT '[]',
    step             int NOT NULL DEFAULT 0,
    weight           int NOT NULL DEFAULT 0,
    step_duration_ms bigint NOT NULL DEFAULT 0,
    rollback_on      jsonb NOT NULL DEFAULT '[]',
    previous_version bigint NOT NULL DEFAULT 0,
    pipeline         text NOT NULL DEFAULT '',
    pipeline_version bigint NOT NULL DEFAULT 0,
    evaluation       text NOT NULL DEFAULT '',
    -- promote: a staging rollout that goes on to production when it succeeds.
    promote          boolean NOT NULL DEFAULT false,
    approval         text NOT NULL DEFAULT 'auto',
    approved_by      text NOT NULL DEFAULT '',
    approve_time     timestamptz,
    requested_by     text NOT NULL DEFAULT '',
    reason           text NOT NULL DEFAULT '',
    smoke_test       jsonb,
    analyses         jsonb NOT NULL DEFAULT '[]',
    -- The rollout loop acts on a deployment when next_action_at has passed.
    next_action_at   timestamptz NOT NULL DEFAULT now(),
    create_time      timestamptz NOT NULL DEFAULT now(),
    update_time      timestamptz NOT NULL DEFAULT now(),
    end_time         timestamptz
);
-- At most one active rollout per model and environment.
CREATE UNIQUE INDEX deployments_one_active ON deployments (model, environment)
    WHERE state IN ('pending', 'awaiting_approval', 'progressing');
CREATE INDEX deployments_due ON deployments (next_action_at) WHERE state IN ('pending', 'progressing');
CREATE INDEX deployments_model ON deployments (model, environment, id DESC);
-- An evaluation deploys its version once, however often its event arrives.
CREATE UNIQUE INDEX deployments_evaluation ON deployments (evaluation, environment) WHERE evaluation <> '';

-- routes: what each environment should serve (the deployer's desired state;
-- the inference target is brought to it and re-synced when it restarts).
CREATE TABLE routes (
    environment    text NOT NULL,
    model          text NOT NULL,
    stable_version bigint NOT NULL DEFAULT 0,
    stable_uri     text NOT NULL DEFAULT '',
    stable_sha256  text NOT NULL DEFAULT '',
    canary_version bigint NOT NULL DEFAULT 0,
    canary_uri     text NOT NULL DEFAULT '',
    canary_sha256  text NOT NULL DEFAULT '',
    canary_weight  int NOT NULL DEFAULT 0,
    shadow_version bigint NOT NULL DEFAULT 0,
    shadow_uri     text NOT NULL DEFAULT '',
    shadow_sha256  text NOT NULL DEFAULT '',
    target         text NOT NULL DEFAULT 'local',
    update_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, model)
);
