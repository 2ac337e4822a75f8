// Package pipeline is the Pipeline spec: the one YAML file in which a user
// says how Gyre validates data, trains, evaluates, deploys, monitors and
// retrains a model.
//
// Parse reads a document strictly (unknown keys are errors), fills every
// default and validates the whole spec, reporting every problem with its
// path. CEL expressions (evaluation gates, rollback conditions, performance
// checks) are compiled at validation time against the same environments the
// evaluator, deployer and monitor evaluate them with (GateEnv, RollbackEnv,
// PerformanceEnv). Canonical and Digest give a deterministic form for
// versioning: specs that mean the same thing give the same bytes.
package pipeline

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// APIVersion and Kind are the only values a Pipeline document may carry.
const (
	APIVersion = "gyre.dev/v1"
	Kind       = "Pipeline"
)

// Trainers.
const (
	TrainerLogistic = "builtin/logistic"
	TrainerLinear   = "builtin/linear"
	TrainerGBDT     = "builtin/gbdt"
	TrainerCommand  = "command"
)

// Privacy actions taken when a detector finds personal data.
const (
	PrivacyReject       = "reject"
	PrivacyRedact       = "redact"
	PrivacyPseudonymize = "pseudonymize"
)

// Production approval modes.
const (
	ApprovalAuto   = "auto"
	ApprovalManual = "manual"
)

// Production rollout strategies.
const (
	StrategyDirect = "direct"
	StrategyCanary = "canary"
	StrategyShadow = "shadow"
)

// Deployment targets.
const (
	TargetLocal      = "local"
	TargetKubernetes = "kubernetes"
)

// Drift methods.
const (
	DriftPSI         = "psi"
	DriftKS          = "ks"
	DriftWasserstein = "wasserstein"
	DriftChi2        = "chi2"
	DriftJS          = "js"
)

// Retraining triggers.
const (
	TriggerNewData     = "new_data"
	TriggerDrift       = "drift"
	TriggerPerformance = "performance"
	TriggerSchedule    = "schedule"
)

// PrimaryMetricAuto lets the evaluator pick: auc for binary classification,
// accuracy for multiclass, rmse for regression.
const PrimaryMetricAuto = "auto"

// Allowed values of the enumerated fields, in the order error messages list them.
var (
	Trainers          = []string{TrainerLogistic, TrainerLinear, TrainerGBDT, TrainerCommand}
	PrivacyActions    = []string{PrivacyReject, PrivacyRedact, PrivacyPseudonymize}
	Approvals         = []string{ApprovalAuto, ApprovalManual}
	Strategies        = []string{StrategyDirect, StrategyCanary, StrategyShadow}
	Targets           = []string{TargetLocal, TargetKubernetes}
	DriftMethods      = []string{DriftPSI, DriftKS, DriftWasserstein, DriftChi2, DriftJS}
	Triggers          = []string{TriggerNewData, TriggerDrift, TriggerPerformance, TriggerSchedule}
	ColumnTypes       = []string{"int", "float", "string", "bool", "timestamp", "category"}
	Detectors         = []string{"email", "phone", "credit_card", "ssn", "cpf", "cnpj", "iban", "ip_address", "name_hint"}
	ClassifierMetrics = []string{"accuracy", "auc", "f1", "precision", "recall", "log_loss", "error_rate"}
	RegressionMetrics = []string{"rmse", "mae", "r2"}
)

// Pipeline is one Pipeline document.
type Pipeline struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

type Spec struct {
	// Model defaults to metadata.name.
	Model      string     `json:"model,omitempty"`
	Dataset    string     `json:"dataset"`
	Validation Validation `json:"validation"`
	Training   Training   `json:"training"`
	Evaluation Evaluation `json:"evaluation"`
	Deployment Deployment `json:"deployment"`
	Monitoring Monitoring `json:"monitoring"`
	Retraining Retraining `json:"retraining"`
}

// Validation says what a dataset version must satisfy to be used.
type Validation struct {
	Schema  Schema  `json:"schema"`
	Rules   []Rule  `json:"rules,omitempty"`
	Privacy Privacy `json:"privacy"`
}

// Schema is either inferred from the first dataset version and enforced on
// later ones (no columns; written "infer"), or the listed columns.
type Schema struct {
	Columns []Column
}

// Infer reports whether the schema is inferred rather than declared.
func (s Schema) Infer() bool { return len(s.Columns) == 0 }

const schemaInfer = "infer"

func (s Schema) MarshalJSON() ([]byte, error) {
	if s.Infer() {
		return json.Marshal(schemaInfer)
	}
	return json.Marshal(s.Columns)
}

func (s *Schema) UnmarshalJSON(b []byte) error {
	var word string
	if err := json.Unmarshal(b, &word); err == nil {
		if word != schemaInfer {
			return fmt.Errorf("schema: want %q or a list of columns, got %q", schemaInfer, word)
		}
		s.Columns = nil
		return nil
	}
	return json.Unmarshal(b, &s.Columns)
}

type Column struct {
	Name string `json:"name"`
	// Type is one of ColumnTypes.
	Type string `json:"type"`
	// Nullable defaults to true.
	Nullable *bool `json:"nullable,omitempty"`
}

// Rule is either a column rule (Column set, with at least one check) or a
// row-count rule (no Column, MinRows and/or MaxRows).
type Rule struct {
	Column          string   `json:"column,omitempty"`
	NotNull         bool     `json:"notNull,omitempty"`
	Min             *float64 `json:"min,omitempty"`
	Max             *float64 `json:"max,omitempty"`
	Allowed         []string `json:"allowed,omitempty"`
	Regex           string   `json:"regex,omitempty"`
	Unique          bool     `json:"unique,omitempty"`
	MaxNullFraction *float64 `json:"maxNullFraction,omitempty"`
	MinRows         int64    `json:"minRows,omitempty"`
	MaxRows         int64    `json:"maxRows,omitempty"`
}

// Privacy says which personal data to look for and what to do on a finding.
type Privacy struct {
	Detect           []string `json:"detect,omitempty"`
	Action           string   `json:"action"`
	QuasiIdentifiers []string `json:"quasiIdentifiers,omitempty"`
	// KAnonymity is the smallest group size allowed over the quasi-identifiers;
	// it defaults to 5 when quasiIdentifiers are given.
	KAnonymity int `json:"kAnonymity,omitempty"`
}

type Training struct {
	// Target is the label column.
	Target  string `json:"target"`
	Trainer string `json:"trainer"`
	// Command and Image apply to trainer "command" only.
	Command   []string       `json:"command,omitempty"`
	Image     string         `json:"image,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	Resources Resources      `json:"resources"`
	Split     Split          `json:"split"`
	// MaxAttempts counts the first attempt: 3 means two retries.
	MaxAttempts int      `json:"maxAttempts"`
	Timeout     Duration `json:"timeout"`
}

type Resources struct {
	CPU       float64 `json:"cpu"`
	MemoryMiB int64   `json:"memoryMiB"`
	GPU       int     `json:"gpu"`
	GPUModel  string  `json:"gpuModel,omitempty"`
}

type Split struct {
	Holdout float64 `json:"holdout"`
	Seed    int64   `json:"seed"`
	// Stratify defaults to true; it applies to classification only.
	Stratify *bool `json:"stratify,omitempty"`
}

type Evaluation struct {
	SensitiveAttributes []string `json:"sensitiveAttributes,omitempty"`
	PrimaryMetric       string   `json:"primaryMetric"`
	// Gates are CEL expressions over GateVariables; all must hold.
	Gates []string `json:"gates,omitempty"`
	// MinGroupSize: fairness metrics of smaller groups are not gated on.
	MinGroupSize int `json:"minGroupSize"`
}

type Deployment struct {
	Target     string     `json:"target"`
	Staging    Staging    `json:"staging"`
	Production Production `json:"production"`
}

type Staging struct {
	SmokeTest SmokeTest `json:"smokeTest"`
}

type SmokeTest struct {
	Requests     int     `json:"requests"`
	MaxErrorRate float64 `json:"maxErrorRate"`
	// MaxLatencyMs bounds the p99 latency; 0 means no bound.
	MaxLatencyMs float64 `json:"maxLatencyMs,omitempty"`
}

type Production struct {
	Approval string `json:"approval"`
	Strategy string `json:"strategy"`
	// Steps are the canary's traffic percentages, increasing, ending at 100.
	Steps        []int    `json:"steps,omitempty"`
	StepDuration Duration `json:"stepDuration,omitzero"`
	// ShadowDuration is how long a shadow mirrors traffic before promotion.
	ShadowDuration Duration `json:"shadowDuration,omitzero"`
	// RollbackOn are CEL expressions over RollbackVariables; any true rolls back.
	// Written out even when empty: an explicit [] turns the default off.
	RollbackOn []string `json:"rollbackOn"`
}

type Monitoring struct {
	Window     Duration `json:"window"`
	MinSamples int      `json:"minSamples"`
	Drift      Drift    `json:"drift"`
	// Performance are CEL expressions over PerformanceMetrics; any false alerts.
	Performance []string `json:"performance,omitempty"`
}

type Drift struct {
	Method    string  `json:"method"`
	Threshold float64 `json:"threshold"`
}

type Retraining struct {
	// On is written out even when empty: an explicit [] means manual only.
	On       []string `json:"on"`
	Schedule string   `json:"schedule,omitempty"`
	Cooldown Duration `json:"cooldown"`
}

// ModelName is the model this pipeline trains and deploys.
func (p *Pipeline) ModelName() string {
	if p.Spec.Model != "" {
		return p.Spec.Model
	}
	return p.Metadata.Name
}

// Duration is a time.Duration written as "2m", "1h30m" or "7d".
type Duration struct {
	time.Duration
}

// ParseDuration accepts Go durations ("90s", "1h30m") and whole days ("7d").
func ParseDuration(s string) (Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return Duration{}, fmt.Errorf("invalid duration %q", s)
		}
		return Duration{time.Duration(n) * 24 * time.Hour}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("invalid duration %q", s)
	}
	return Duration{d}, nil
}

// String drops the zero units time.Duration prints: "2m", not "2m0s".
func (d Duration) String() string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (d Duration) IsZero() bool { return d.Duration == 0 }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"2m\": %w", err)
	}
	parsed, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}
