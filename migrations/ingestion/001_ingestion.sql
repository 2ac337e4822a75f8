-- Ingestion: datasets and their immutable, content-addressed versions.

CREATE TABLE datasets (
    name           text PRIMARY KEY,
    -- The schema later versions are checked against ([] until the first version).
    schema         jsonb NOT NULL DEFAULT '[]',
    latest_version bigint NOT NULL DEFAULT 0,
    create_time    timestamptz NOT NULL DEFAULT now(),
    update_time    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dataset_versions (
    dataset        text NOT NULL REFERENCES datasets (name),
    version        bigint NOT NULL,
    sha256         text NOT NULL,
    upload_sha256  text NOT NULL,
    uri            text NOT NULL,
    size_bytes     bigint NOT NULL,
    rows           bigint NOT NULL,
    source_format  text NOT NULL,
    columns        jsonb NOT NULL,
    report_sha256  text NOT NULL,
    profile_uri    text NOT NULL,
    -- The profile without its sketches: what people and dashboards read.
    profile_summary jsonb NOT NULL DEFAULT '{}',
    summary        jsonb NOT NULL,
    pipeline       text NOT NULL DEFAULT '',
    create_time    timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL DEFAULT '',
    PRIMARY KEY (dataset, version),
    -- The same bytes pushed twice are the same version.
    UNIQUE (dataset, upload_sha256)
);

-- Uploads refused by validation: no data is kept, only the report. The same
-- bytes under other rules are judged again.
CREATE TABLE rejected_uploads (
    dataset       text NOT NULL REFERENCES datasets (name),
    upload_sha256 text NOT NULL,
    rules_sha256  text NOT NULL,
    report_sha256 text NOT NULL,
    summary       jsonb NOT NULL,
    pipeline      text NOT NULL DEFAULT '',
    create_time   timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL DEFAULT '',
    PRIMARY KEY (dataset, upload_sha256, rules_sha256)
);
