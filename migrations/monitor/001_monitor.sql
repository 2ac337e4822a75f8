-- The monitor: prediction windows, feedback, drift and performance series, alerts.

-- One row per model version, environment and window. Sketches keep its size
-- bounded whatever the traffic: a KLL quantile sketch (pkg/sketch, binary) is
-- a few KiB, a top-k of predicted labels at most 512 counters.
CREATE TABLE windows (
    id                bigserial PRIMARY KEY,
    model             text NOT NULL,
    version           bigint NOT NULL,
    environment       text NOT NULL,
    start_time        timestamptz NOT NULL,
    end_time          timestamptz NOT NULL,
    requests          bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    -- Records that arrived after the window closed: counted, not scored.
    late_records      bigint NOT NULL DEFAULT 0,
    latency           bytea,
    prediction_values bytea,
    prediction_labels bytea,
    closed_at         timestamptz,
    -- Set when feedback joined one of the window's predictions after its
    -- performance was last measured; the closer measures it again.
    labels_changed_at timestamptz,
    UNIQUE (model, version, environment, start_time)
);
CREATE INDEX windows_open ON windows (end_time) WHERE closed_at IS NULL;
CREATE INDEX windows_relabelled ON windows (start_time) WHERE labels_changed_at IS NOT NULL;
CREATE INDEX windows_model ON windows (model, start_time);

-- Each input feature's values in a window: a KLL sketch (numeric) or a
-- top-k of category counts (categorical).
CREATE TABLE window_features (
    window_id bigint NOT NULL REFERENCES windows ON DELETE CASCADE,
    feature   text NOT NULL,
    kind      text NOT NULL,
    count     bigint NOT NULL,
    sketch    bytea NOT NULL,
    PRIMARY KEY (window_id, feature, kind)
);

-- Logged predictions, kept for the label horizon only: what feedback joins
-- to measure live performance and fairness.
CREATE TABLE predictions (
    prediction_id text NOT NULL,
    row           int NOT NULL,
    model         text NOT NULL,
    version       bigint NOT NULL,
    environment   text NOT NULL,
    window_start  timestamptz NOT NULL,
    time          timestamptz NOT NULL,
    label         text NOT NULL,
    value         double precision NOT NULL,
    probabilities jsonb NOT NULL,
    -- The sensitive attributes' values (pipeline evaluation.sensitiveAttributes).
    groups        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (prediction_id, row)
);
CREATE INDEX predictions_window ON predictions (model, version, environment, window_start);
CREATE INDEX predictions_time ON predictions (time);

-- Ground truth by prediction, kept for the label horizon. It may arrive
-- before its prediction is logged.
CREATE TABLE feedback (
    prediction_id text NOT NULL,
    row           int NOT NULL,
    label         text,
    value         double precision,
    receive_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prediction_id, row)
);
CREATE INDEX feedback_received ON feedback (receive_time);

-- Inference batches folded in: a batch published again under another event
-- id changes nothing twice.
CREATE TABLE logged_batches (
    batch       text PRIMARY KEY,
    logged_time timestamptz NOT NULL DEFAULT now()
);

-- Every drift score of every closed window.
CREATE TABLE drift_scores (
    window_id bigint NOT NULL REFERENCES windows ON DELETE CASCADE,
    feature   text NOT NULL,
    method    text NOT NULL,
    score     double precision NOT NULL,
    p_value   double precision,
    samples   bigint NOT NULL,
    reference text NOT NULL,
    alerting  boolean NOT NULL DEFAULT false,
    threshold double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (window_id, feature, method)
);

-- Live metrics per window, measured again while feedback keeps arriving.
CREATE TABLE performance_scores (
    window_id bigint NOT NULL REFERENCES windows ON DELETE CASCADE,
    metric    text NOT NULL,
    value     double precision NOT NULL,
    samples   bigint NOT NULL,
    PRIMARY KEY (window_id, metric)
);

CREATE TABLE alerts (
    id            uuid PRIMARY KEY,
    model         text NOT NULL,
    model_version bigint NOT NULL,
    environment   text NOT NULL,
    pipeline      text NOT NULL,
    kind          text NOT NULL,
    rule          text NOT NULL,
    feature       text NOT NULL DEFAULT '',
    method        text NOT NULL DEFAULT '',
    state         text NOT NULL,
    value         double precision NOT NULL,
    threshold     double precision NOT NULL,
    last_value    double precision NOT NULL,
    window_start  timestamptz NOT NULL,
    fire_time     timestamptz NOT NULL DEFAULT now(),
    resolve_time  timestamptz
);
-- One firing alert per model and rule.
CREATE UNIQUE INDEX alerts_one_firing ON alerts (model, rule) WHERE state = 'firing';
CREATE INDEX alerts_model ON alerts (model, id);

-- Where each rule of a model stands: the newest window it judged and the
-- clean windows in a row since it last failed (hysteresis).
CREATE TABLE rule_states (
    model             text NOT NULL,
    rule              text NOT NULL,
    last_window_start timestamptz,
    clean_windows     int NOT NULL DEFAULT 0,
    PRIMARY KEY (model, rule)
);

-- Alert notifications to webhooks, written with the alert's state change and
-- sent with retries, so a crash loses none. sink is a digest of the URL (the
-- URL may hold a token and stays in the configuration).
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    alert           uuid NOT NULL,
    event           text NOT NULL,
    sink            text NOT NULL,
    format          text NOT NULL,
    body            bytea NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text NOT NULL DEFAULT '',
    create_time     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
