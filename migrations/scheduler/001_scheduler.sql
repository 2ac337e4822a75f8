-- The trainer-scheduler: training jobs, their queue and leases, workers, logs.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    pipeline         text NOT NULL,
    pipeline_version bigint NOT NULL,
    model            text NOT NULL,
    dataset          text NOT NULL,
    dataset_version  bigint NOT NULL,
    dataset_sha256   text NOT NULL,
    dataset_uri      text NOT NULL,
    trainer          text NOT NULL,
    command          jsonb NOT NULL DEFAULT '[]',
    params           jsonb NOT NULL DEFAULT '{}',
    split            jsonb NOT NULL DEFAULT '{}',
    target           text NOT NULL,
    cpu              double precision NOT NULL DEFAULT 1,
    memory_mib       bigint NOT NULL DEFAULT 0,
    gpu              int NOT NULL DEFAULT 0,
    gpu_model        text NOT NULL DEFAULT '',
    priority         int NOT NULL DEFAULT 0,
    attempt          int NOT NULL DEFAULT 0,
    max_attempts     int NOT NULL DEFAULT 3,
    timeout_seconds  bigint NOT NULL DEFAULT 3600,
    state            text NOT NULL DEFAULT 'queued',
    reason           text NOT NULL DEFAULT '',
    trigger          text NOT NULL DEFAULT 'manual',
    code_ref         text NOT NULL DEFAULT '',
    idempotency_key  text UNIQUE,
    -- The cron firing a scheduled job was started for.
    fire_time        timestamptz,
    -- The current attempt's lease: a worker holds the job while it heartbeats.
    worker           text NOT NULL DEFAULT '',
    lease_id         uuid,
    lease_expires    timestamptz,
    gpu_devices      text NOT NULL DEFAULT '',
    -- Retries wait (backoff) until then.
    not_before       timestamptz NOT NULL DEFAULT now(),
    cancel_requested boolean NOT NULL DEFAULT false,
    model_version    bigint NOT NULL DEFAULT 0,
    metrics          jsonb NOT NULL DEFAULT '{}',
    create_time      timestamptz NOT NULL DEFAULT now(),
    start_time       timestamptz,
    end_time         timestamptz
);
CREATE INDEX jobs_queue ON jobs (priority DESC, create_time) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (pipeline) WHERE state = 'running';
CREATE INDEX jobs_list ON jobs (create_time DESC);

CREATE TABLE workers (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    cpu        double precision NOT NULL,
    memory_mib bigint NOT NULL,
    gpus       jsonb NOT NULL DEFAULT '[]',
    labels     jsonb NOT NULL DEFAULT '{}',
    last_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_logs (
    job     uuid NOT NULL REFERENCES jobs (id),
    seq     bigserial,
    attempt int NOT NULL,
    stream  text NOT NULL,
    text    text NOT NULL,
    time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, seq)
);
