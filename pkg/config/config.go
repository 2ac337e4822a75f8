// Package config loads Gyre's configuration in one order: defaults, then a
// strict YAML file (unknown keys are errors, ${ENV} expanded), then GYRE_*
// environment variables, then flags, then Validate().
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of a gyre process. Fields tagged
// secret:"true" are masked by Print.
type Config struct {
	Targets  []string `yaml:"targets"`
	GRPCAddr string   `yaml:"grpcAddr"`
	HTTPAddr string   `yaml:"httpAddr"`
	// ShutdownTimeout bounds the drain on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`

	Database Database  `yaml:"database"`
	NATS     NATS      `yaml:"nats"`
	S3       S3        `yaml:"s3"`
	Log      Log       `yaml:"log"`
	Tracing  Tracing   `yaml:"tracing"`
	Services Endpoints `yaml:"services"`

	Ingestion Ingestion `yaml:"ingestion"`
	Scheduler Scheduler `yaml:"scheduler"`
	Inference Inference `yaml:"inference"`
	Deployer  Deployer  `yaml:"deployer"`
	Monitor   Monitor   `yaml:"monitor"`
}

// Monitor configures production monitoring. A window's length, minimum
// samples, drift method and performance checks come from the model's
// pipeline (spec.monitoring); these are the process-wide knobs.
type Monitor struct {
	// TickInterval is how often windows that ended are closed and scored.
	TickInterval time.Duration `yaml:"tickInterval"`
	// CloseDelay keeps a window open this long after its end, for predictions
	// still in an inference server's log buffer.
	CloseDelay time.Duration `yaml:"closeDelay"`
	// LabelHorizon is how long a prediction waits for its feedback label;
	// predictions and feedback older than this are pruned.
	LabelHorizon time.Duration `yaml:"labelHorizon"`
	// Retention is how long windows and their scores are kept.
	Retention time.Duration `yaml:"retention"`
	// ResolveAfter consecutive clean windows resolve a firing alert; a drift
	// window is clean at or below ResolveMargin x threshold.
	ResolveAfter  int     `yaml:"resolveAfter"`
	ResolveMargin float64 `yaml:"resolveMargin"`
	// AlertEnvironment is the environment whose windows fire alerts (the
	// others are scored and stored only).
	AlertEnvironment string `yaml:"alertEnvironment"`
	// Sinks receive every alert fired and resolved.
	Sinks AlertSinks `yaml:"sinks"`
}

// AlertSinks are the webhooks alerts are POSTed to. Their URLs often carry a
// token, so they are secrets too.
type AlertSinks struct {
	// WebhookURLs receive the alert as JSON; SlackURLs as a Slack message ({"text": ...}).
	WebhookURLs []string `yaml:"webhookUrls" secret:"true"`
	SlackURLs   []string `yaml:"slackUrls" secret:"true"`
	// SigningSecret keys the HMAC-SHA256 of each body (X-Gyre-Signature: sha256=<hex>).
	SigningSecret string `yaml:"signingSecret" secret:"true"`
	// A failed delivery is retried after RetryBackoff, doubling up to
	// MaxBackoff, until MaxAttempts.
	MaxAttempts  int           `yaml:"maxAttempts"`
	RetryBackoff time.Duration `yaml:"retryBackoff"`
	MaxBackoff   time.Duration `yaml:"maxBackoff"`
	// Timeout bounds one delivery request.
	Timeout time.Duration `yaml:"timeout"`
}

// Inference configures the data plane (the inference target).
type Inference struct {
	// ProductionAddr and StagingAddr (host:port) give each environment its
	// own HTTP listener; empty serves both on the gateway only
	// (/v2/... and /staging/v2/...).
	ProductionAddr string `yaml:"productionAddr"`
	StagingAddr    string `yaml:"stagingAddr"`
	// LogBuffer is how many predictions wait for the NATS logger before new
	// ones are dropped (and counted); a request never waits for it.
	LogBuffer int `yaml:"logBuffer"`
	// LogBatch predictions go out in one inference.logged message, at least
	// every LogFlushInterval.
	LogBatch         int           `yaml:"logBatch"`
	LogFlushInterval time.Duration `yaml:"logFlushInterval"`
	// BundleDir is where model bundles are unpacked (default: the OS temp dir).
	BundleDir string `yaml:"bundleDir"`
	// Static serves one bundle without a deployer (the Kubernetes target's pods).
	Static StaticRoute `yaml:"static"`
}

// StaticRoute is one model version an inference process serves from start.
type StaticRoute struct {
	Environment  string `yaml:"environment"`
	Model        string `yaml:"model"`
	Version      int64  `yaml:"version"`
	BundleURI    string `yaml:"bundleUri"`
	BundleSHA256 string `yaml:"bundleSha256"`
}

// Deployer configures rollouts.
type Deployer struct {
	// TickInterval is how often the rollout loop looks at active rollouts.
	TickInterval time.Duration `yaml:"tickInterval"`
	// Kubernetes is used by pipelines whose deployment.target is kubernetes.
	Kubernetes Kubernetes `yaml:"kubernetes"`
}

type Kubernetes struct {
	// Kubeconfig path; empty uses the in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig"`
	// Image runs the inference pods (gyre server --target=inference).
	Image string `yaml:"image"`
	// NamespacePrefix + environment is each environment's namespace.
	NamespacePrefix string `yaml:"namespacePrefix"`
	// RolloutTimeout bounds the wait for a Deployment to become available.
	RolloutTimeout time.Duration `yaml:"rolloutTimeout"`
}

type Scheduler struct {
	// LeaseDuration: a worker that stops heart-beating loses its job after it.
	LeaseDuration time.Duration `yaml:"leaseDuration"`
	// MaxRunningPerPipeline bounds the concurrent jobs of one pipeline.
	MaxRunningPerPipeline int `yaml:"maxRunningPerPipeline"`
	// RetryBackoff is the wait before a failed job's second attempt; it doubles.
	RetryBackoff time.Duration `yaml:"retryBackoff"`
}

type Ingestion struct {
	// MaxUploadBytes refuses bigger dataset uploads (bytes as sent).
	MaxUploadBytes int64 `yaml:"maxUploadBytes"`
	// PseudonymizationKey keys the HMAC that pseudonymises personal data; keep
	// it stable so pseudonyms join across versions. Required for the
	// pseudonymize policy.
	PseudonymizationKey string `yaml:"pseudonymizationKey" secret:"true"`
	// SpoolDir holds uploads while they are checked (default: the OS temp dir).
	SpoolDir string `yaml:"spoolDir"`
}

type Database struct {
	URL      string `yaml:"url" secret:"true"`
	MaxConns int32  `yaml:"maxConns"`
}

type NATS struct {
	URL string `yaml:"url"`
}

type S3 struct {
	Endpoint  string `yaml:"endpoint"`
	AccessKey string `yaml:"accessKey"`
	SecretKey string `yaml:"secretKey" secret:"true"`
	Bucket    string `yaml:"bucket"`
	Region    string `yaml:"region"`
	Secure    bool   `yaml:"secure"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type Tracing struct {
	// OTLPEndpoint (host:port, OTLP/gRPC); empty disables export, context still propagates.
	OTLPEndpoint string  `yaml:"otlpEndpoint"`
	SampleRatio  float64 `yaml:"sampleRatio"`
}

// Endpoints are the gRPC addresses of services this process does not run itself.
type Endpoints struct {
	Registry  string `yaml:"registry"`
	Ingestion string `yaml:"ingestion"`
	Evaluator string `yaml:"evaluator"`
	Deployer  string `yaml:"deployer"`
	Inference string `yaml:"inference"`
}

// Default is the configuration before any file, env or flag.
func Default() Config {
	return Config{
		Targets:         []string{"all"},
		GRPCAddr:        "127.0.0.1:9090",
		HTTPAddr:        "127.0.0.1:8080",
		ShutdownTimeout: 30 * time.Second,
		Database:        Database{MaxConns: 10},
		NATS:            NATS{URL: "nats://127.0.0.1:4222"},
		S3:              S3{Bucket: "gyre", Region: "us-east-1"},
		Log:             Log{Level: "info", Format: "json"},
		Tracing:         Tracing{SampleRatio: 1},
		Ingestion:       Ingestion{MaxUploadBytes: 10 << 30},
		Scheduler:       Scheduler{LeaseDuration: 30 * time.Second, MaxRunningPerPipeline: 4, RetryBackoff: 5 * time.Second},
		Inference:       Inference{LogBuffer: 65536, LogBatch: 512, LogFlushInterval: 200 * time.Millisecond},
		Deployer: Deployer{TickInterval: time.Second, Kubernetes: Kubernetes{
			Image: "ghcr.io/gyreml/gyre:latest", NamespacePrefix: "gyre-", RolloutTimeout: 5 * time.Minute}},
		Monitor: Monitor{TickInterval: 5 * time.Second, CloseDelay: 30 * time.Second, LabelHorizon: 7 * 24 * time.Hour,
			Retention: 90 * 24 * time.Hour, ResolveAfter: 2, ResolveMargin: 0.8, AlertEnvironment: "production",
			Sinks: AlertSinks{MaxAttempts: 10, RetryBackoff: 5 * time.Second, MaxBackoff: 10 * time.Minute, Timeout: 10 * time.Second}},
	}
}

// LoadFile merges a YAML file into c. Unknown keys are errors; ${VAR} is expanded
// from the environment (an unset variable is an error, so typos don't become "").
func (c *Config) LoadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var missing []string
	expanded := os.Expand(string(raw), func(name string) string {
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return fmt.Errorf("config %s: environment variables not set: %s", path, strings.Join(missing, ", "))
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(expanded)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// LoadEnv applies GYRE_* variables: each field's YAML path in upper snake case,
// e.g. database.url -> GYRE_DATABASE_URL, s3.secretKey -> GYRE_S3_SECRET_KEY.
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	var errs []error
	walk(reflect.ValueOf(c).Elem(), "GYRE", func(name string, v reflect.Value, _ reflect.StructField) {
		raw, ok := lookup(name)
		if !ok {
			return
		}
		if err := setString(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// EnvNames lists every variable LoadEnv reads, for help texts.
func EnvNames() []string {
	var names []string
	c := Default()
	walk(reflect.ValueOf(&c).Elem(), "GYRE", func(name string, _ reflect.Value, _ reflect.StructField) {
		names = append(names, name)
	})
	return names
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("targets: at least one target is required"))
	}
	for _, a := range []struct{ key, addr string }{{"grpcAddr", c.GRPCAddr}, {"httpAddr", c.HTTPAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", a.key, a.addr))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdownTimeout: must be positive"))
	}
	if c.Database.URL == "" {
		errs = append(errs, errors.New("database.url: required (GYRE_DATABASE_URL)"))
	} else if u, err := url.Parse(c.Database.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		errs = append(errs, errors.New("database.url: must be a postgres:// URL"))
	}
	if c.Database.MaxConns < 1 {
		errs = append(errs, errors.New("database.maxConns: must be at least 1"))
	}
	if !strings.HasPrefix(c.NATS.URL, "nats://") && !strings.HasPrefix(c.NATS.URL, "tls://") {
		errs = append(errs, fmt.Errorf("nats.url: %q must start with nats:// or tls://", c.NATS.URL))
	}
	if c.S3.Endpoint == "" {
		errs = append(errs, errors.New("s3.endpoint: required (GYRE_S3_ENDPOINT)"))
	}
	if c.S3.Bucket == "" {
		errs = append(errs, errors.New("s3.bucket: required"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of json, text", c.Log.Format))
	}
	if c.Ingestion.MaxUploadBytes <= 0 {
		errs = append(errs, errors.New("ingestion.maxUploadBytes: must be positive"))
	}
	if k := c.Ingestion.PseudonymizationKey; k != "" && len(k) < 16 {
		errs = append(errs, errors.New("ingestion.pseudonymizationKey: must be at least 16 characters"))
	}
	if c.Scheduler.LeaseDuration < time.Second {
		errs = append(errs, errors.New("scheduler.leaseDuration: must be at least 1s"))
	}
	if c.Scheduler.MaxRunningPerPipeline < 1 {
		errs = append(errs, errors.New("scheduler.maxRunningPerPipeline: must be at least 1"))
	}
	for _, a := range []struct{ key, addr string }{{"inference.productionAddr", c.Inference.ProductionAddr}, {"inference.stagingAddr", c.Inference.StagingAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); a.addr != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", a.key, a.addr))
		}
	}
	if c.Inference.LogBuffer < 1 || c.Inference.LogBatch < 1 || c.Inference.LogBatch > c.Inference.LogBuffer {
		errs = append(errs, errors.New("inference.logBatch: must be at least 1 and at most inference.logBuffer"))
	}
	if c.Inference.LogFlushInterval <= 0 {
		errs = append(errs, errors.New("inference.logFlushInterval: must be positive"))
	}
	if c.Deployer.TickInterval <= 0 {
		errs = append(errs, errors.New("deployer.tickInterval: must be positive"))
	}
	errs = append(errs, c.Monitor.validate()...)
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		errs = append(errs, errors.New("tracing.sampleRatio: must be within [0, 1]"))
	}
	return errors.Join(errs...)
}

func (m *Monitor) validate() []error {
	var errs []error
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"monitor.tickInterval", m.TickInterval}, {"monitor.labelHorizon", m.LabelHorizon}, {"monitor.retention", m.Retention},
		{"monitor.sinks.retryBackoff", m.Sinks.RetryBackoff}, {"monitor.sinks.maxBackoff", m.Sinks.MaxBackoff}, {"monitor.sinks.timeout", m.Sinks.Timeout}} {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", d.key))
		}
	}
	if m.CloseDelay < 0 {
		errs = append(errs, errors.New("monitor.closeDelay: must not be negative"))
	}
	if m.Retention < m.LabelHorizon {
		errs = append(errs, errors.New("monitor.retention: must be at least monitor.labelHorizon"))
	}
	if m.ResolveAfter < 1 {
		errs = append(errs, errors.New("monitor.resolveAfter: must be at least 1"))
	}
	if m.ResolveMargin <= 0 || m.ResolveMargin > 1 {
		errs = append(errs, errors.New("monitor.resolveMargin: must be within (0, 1]"))
	}
	if m.AlertEnvironment == "" {
		errs = append(errs, errors.New("monitor.alertEnvironment: required"))
	}
	if m.Sinks.MaxAttempts < 1 {
		errs = append(errs, errors.New("monitor.sinks.maxAttempts: must be at least 1"))
	}
	for _, list := range []struct {
		key  string
		urls []string
	}{{"monitor.sinks.webhookUrls", m.Sinks.WebhookURLs}, {"monitor.sinks.slackUrls", m.Sinks.SlackURLs}} {
		for i, raw := range list.urls {
			// The URL itself is a secret: say which one, not what it is.
			if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("%s[%d]: not an http(s) URL", list.key, i))
			}
		}
	}
	if len(m.Sinks.WebhookURLs) > 0 && m.Sinks.SigningSecret == "" {
		errs = append(errs, errors.New("monitor.sinks.signingSecret: required with webhookUrls (receivers verify X-Gyre-Signature with it)"))
	}
	return errs
}

// Print renders the effective configuration as YAML with secrets masked.
func (c Config) Print() string {
	masked := c
	walk(reflect.ValueOf(&masked).Elem(), "", func(_ string, v reflect.Value, f reflect.StructField) {
		switch {
		case f.Tag.Get("secret") != "true":
		case v.Kind() == reflect.Slice:
			// A new slice: the masked copy must not write into c's.
			out := make([]string, v.Len())
			for i := range out {
				out[i] = maskURL(v.Index(i).String())
			}
			v.Set(reflect.ValueOf(out))
		case v.String() != "":
			v.SetString(maskSecret(v.String()))
		}
	})
	out, err := yaml.Marshal(masked)
	if err != nil {
		return fmt.Sprintf("# cannot render config: %v\n", err)
	}
	return string(out)
}

// maskSecret keeps a URL's shape (so the host is still visible) but hides its password.
func maskSecret(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.Redacted()
	}
	return "*****"
}

// maskURL keeps a URL's scheme and host and hides the rest, where webhook
// tokens live.
func maskURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Scheme + "://" + u.Host + "/*****"
	}
	return "*****"
}

// walk calls fn for every leaf field with its env-style name.
func walk(v reflect.Value, prefix string, fn func(name string, v reflect.Value, f reflect.StructField)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("yaml")
		if key == "" || key == "-" {
			continue
		}
		name := prefix + "_" + upperSnake(key)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			walk(fv, name, fn)
			continue
		}
		fn(name, fv, f)
	}
}

func upperSnake(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if r >= 'A' && r <= 'Z' && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func setString(v reflect.Value, raw string) error {
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case []string:
		var parts []string
		for p := range strings.SplitSeq(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
