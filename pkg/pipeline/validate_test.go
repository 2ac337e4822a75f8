package pipeline

import (
	"strings"
	"testing"
)

// minimal is the smallest valid header; cases append a spec body.
const minimal = "apiVersion: gyre.dev/v1\nkind: Pipeline\nmetadata: {name: churn}\n"

func TestValidationProblems(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want map[string]string
	}{
		{"wrong apiVersion and kind", "apiVersion: gyre.dev/v2\nkind: Pipe\nmetadata: {name: churn}\nspec: {dataset: d}\n", map[string]string{
			"apiVersion": `"gyre.dev/v2" is not one of gyre.dev/v1`,
			"kind":       `"Pipe" is not one of Pipeline`,
		}},
		{"missing dataset and bad model", minimal + "spec: {model: -x}\n", map[string]string{
			"spec.model":   `invalid name "-x"`,
			"spec.dataset": "required",
		}},
		{"bad label key", minimal[:len(minimal)-len("metadata: {name: churn}\n")] + "metadata: {name: churn, labels: {'-team': x}}\nspec: {dataset: d}\n", map[string]string{
			"metadata.labels.-team": "invalid label key",
		}},
		{"declared schema", minimal + `spec:
  dataset: d
  validation:
    schema: [{name: age, type: int}, {name: age, type: float}, {name: zip, type: text}, {name: label, type: bool}]
    rules: [{column: income, notNull: true}]
    privacy: {quasiIdentifiers: [zip, sex]}
  training: {target: default}
`, map[string]string{
			"spec.validation.schema[1].name":              `column "age" is declared twice`,
			"spec.validation.schema[2].type":              `"text" is not one of int, float, string, bool, timestamp, category`,
			"spec.validation.rules[0].column":             `column "income" is not in spec.validation.schema`,
			"spec.validation.privacy.quasiIdentifiers[1]": `column "sex" is not in spec.validation.schema`,
			"spec.training.target":                        `column "default" is not in spec.validation.schema`,
		}},
		{"rules", minimal + `spec:
  dataset: d
  validation:
    rules:
      - {column: age}
      - {column: age, min: 10, max: 5, regex: "(", maxNullFraction: 1.5}
      - {minRows: 100, maxRows: 10}
      - {notNull: true}
      - {column: age, notNull: true, minRows: 5}
      - {}
`, map[string]string{
			"spec.validation.rules[0]":                 "no check",
			"spec.validation.rules[1].max":             "must be at least min (10), got 5",
			"spec.validation.rules[1].regex":           "missing closing )",
			"spec.validation.rules[1].maxNullFraction": "must be between 0 and 1, got 1.5",
			"spec.validation.rules[2].maxRows":         "must be at least minRows (100), got 10",
			"spec.validation.rules[3]":                 "want column with a check",
			"spec.validation.rules[4]":                 "minRows and maxRows apply to the whole dataset",
			"spec.validation.rules[5]":                 "want column with a check",
		}},
		{"privacy", minimal + `spec:
  dataset: d
  validation:
    privacy: {detect: [email, passport, email], action: hide, kAnonymity: 3}
`, map[string]string{
			"spec.validation.privacy.detect[1]":  `"passport" is not one of email, phone, credit_card, ssn, cpf, cnpj, iban, ip_address, name_hint`,
			"spec.validation.privacy.detect[2]":  `"email" is listed twice`,
			"spec.validation.privacy.action":     `"hide" is not one of reject, redact, pseudonymize`,
			"spec.validation.privacy.kAnonymity": "applies only with quasiIdentifiers",
		}},
		{"k-anonymity below 2", minimal + "spec: {dataset: d, validation: {privacy: {quasiIdentifiers: [zip], kAnonymity: 1}}}\n", map[string]string{
			"spec.validation.privacy.kAnonymity": "must be at least 2, got 1",
		}},
		{"command trainer without command", minimal + "spec: {dataset: d, training: {trainer: command}}\n", map[string]string{
			"spec.training.command": "required for trainer command",
		}},
		{"builtin trainer with command-only fields", minimal + `spec:
  dataset: d
  training: {trainer: builtin/logistic, command: [python, train.py], image: "python:3.12", resources: {gpu: 1, gpuModel: h100}}
`, map[string]string{
			"spec.training.command":       "applies only to trainer command",
			"spec.training.image":         "applies only to trainer command",
			"spec.training.resources.gpu": "built-in trainers run on CPU",
		}},
		{"unknown trainer", minimal + "spec: {dataset: d, training: {trainer: xgboost}}\n", map[string]string{
			"spec.training.trainer": `"xgboost" is not one of builtin/logistic, builtin/linear, builtin/gbdt, command`,
		}},
		{"negative numbers", minimal + `spec:
  dataset: d
  training: {resources: {cpu: -1, memoryMiB: -5, gpu: -1}, split: {holdout: -0.1}, maxAttempts: -1, timeout: -5m}
  deployment: {staging: {smokeTest: {requests: -1, maxErrorRate: 2, maxLatencyMs: -1}}}
  monitoring: {window: -1m, minSamples: -1, drift: {threshold: -0.2}}
  evaluation: {minGroupSize: -3}
  retraining: {cooldown: -1h}
`, map[string]string{
			"spec.training.resources.cpu":                    "must be positive, got -1",
			"spec.training.resources.memoryMiB":              "must be positive, got -5",
			"spec.training.resources.gpu":                    "must not be negative, got -1",
			"spec.training.split.holdout":                    "must be between 0 and 1 (exclusive), got -0.1",
			"spec.training.maxAttempts":                      "must be at least 1, got -1",
			"spec.training.timeout":                          "must be positive, got -5m",
			"spec.deployment.staging.smokeTest.requests":     "must be at least 1, got -1",
			"spec.deployment.staging.smokeTest.maxErrorRate": "must be between 0 and 1, got 2",
			"spec.deployment.staging.smokeTest.maxLatencyMs": "must not be negative, got -1",
			"spec.monitoring.window":                         "must be positive, got -1m",
			"spec.monitoring.minSamples":                     "must be at least 1, got -1",
			"spec.monitoring.drift.threshold":                "must be positive, got -0.2",
			"spec.evaluation.minGroupSize":                   "must be at least 1, got -3",
			"spec.retraining.cooldown":                       "must be positive, got -1h",
		}},
		{"evaluation", minimal + `spec:
  dataset: d
  training: {trainer: builtin/linear, target: price}
  evaluation:
    sensitiveAttributes: [price, sex, sex]
    primaryMetric: auc
    gates: ["metrics.auc", "", "metrics.auc >="]
`, map[string]string{
			"spec.evaluation.sensitiveAttributes[0]": `"price" is the training target`,
			"spec.evaluation.sensitiveAttributes[2]": `column "sex" is listed twice`,
			"spec.evaluation.primaryMetric":          `"auc" is not one of auto, rmse, mae, r2`,
			"spec.evaluation.gates[0]":               "must return bool, returns dyn",
			"spec.evaluation.gates[1]":               "empty expression",
			"spec.evaluation.gates[2]":               "Syntax error",
		}},
		{"canary steps", minimal + "spec: {dataset: d, deployment: {target: cloud, production: {steps: [0, 50, 50, 90]}}}\n", map[string]string{
			"spec.deployment.target":              `"cloud" is not one of local, kubernetes`,
			"spec.deployment.production.steps[0]": "must be a percentage from 1 to 100, got 0",
			"spec.deployment.production.steps[2]": "must be greater than the step before (50), got 50",
			"spec.deployment.production.steps":    "the last step must be 100, got 90",
		}},
		{"empty canary steps", minimal + "spec: {dataset: d, deployment: {production: {strategy: canary, steps: []}}}\n", map[string]string{
			"spec.deployment.production.steps": "required for strategy canary",
		}},
		{"canary fields with shadow", minimal + `spec:
  dataset: d
  deployment: {production: {strategy: shadow, steps: [50, 100], stepDuration: 1m, rollbackOn: [canary.error_rate]}}
`, map[string]string{
			"spec.deployment.production.steps":         "applies only to strategy canary",
			"spec.deployment.production.stepDuration":  "applies only to strategy canary",
			"spec.deployment.production.rollbackOn[0]": "must return bool",
		}},
		{"rollout fields with direct", minimal + `spec:
  dataset: d
  deployment: {production: {strategy: direct, shadowDuration: 5m, rollbackOn: ["canary.error_rate > 0.1"]}}
`, map[string]string{
			"spec.deployment.production.shadowDuration": "applies only to strategy shadow",
			"spec.deployment.production.rollbackOn":     "applies only to strategies canary and shadow",
		}},
		{"rollback unknown variable", minimal + `spec:
  dataset: d
  deployment: {production: {rollbackOn: ["baseline.error_rate > 0.1"]}}
`, map[string]string{
			"spec.deployment.production.rollbackOn[0]": "undeclared reference to 'baseline' (column 1)",
		}},
		{"monitoring", minimal + `spec:
  dataset: d
  monitoring: {drift: {method: kl}, performance: ["accurracy >= 0.8", "accuracy"]}
  retraining: {on: [performance, hourly]}
`, map[string]string{
			"spec.monitoring.drift.method":   `"kl" is not one of psi, ks, wasserstein, chi2, js`,
			"spec.monitoring.performance[0]": "undeclared reference to 'accurracy' (column 1)",
			"spec.monitoring.performance[1]": "must return bool, returns double",
			"spec.retraining.on[1]":          `"hourly" is not one of new_data, drift, performance, schedule`,
		}},
		{"retraining on performance without checks", minimal + "spec: {dataset: d, retraining: {on: [drift, performance, drift]}}\n", map[string]string{
			"spec.retraining.on[2]": `"drift" is listed twice`,
			"spec.retraining.on":    "performance needs spec.monitoring.performance checks",
		}},
		{"schedule missing", minimal + "spec: {dataset: d, retraining: {on: [schedule]}}\n", map[string]string{
			"spec.retraining.schedule": "required when retraining on schedule",
		}},
		{"schedule without trigger", minimal + "spec: {dataset: d, retraining: {schedule: '0 3 * * *'}}\n", map[string]string{
			"spec.retraining.schedule": "retraining.on does not include schedule",
		}},
		{"schedule out of range", minimal + "spec: {dataset: d, retraining: {on: [schedule], schedule: '61 3 * * *'}}\n", map[string]string{
			"spec.retraining.schedule": "minute: 61 out of range 0-59",
		}},
		{"schedule with four fields", minimal + "spec: {dataset: d, retraining: {on: [schedule], schedule: '0 3 * *'}}\n", map[string]string{
			"spec.retraining.schedule": "want 5 fields",
		}},
		{"schedule never fires", minimal + "spec: {dataset: d, retraining: {on: [schedule], schedule: '0 0 31 feb *'}}\n", map[string]string{
			"spec.retraining.schedule": `"0 0 31 feb *" never fires`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErrors(t, parseErrors(t, c.doc), c.want)
		})
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "credit-risk", "x1", "0abc", strings.Repeat("a", 63)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "A", "a_b", "a.b", "é", strings.Repeat("a", 64)} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}

func TestExplicitEmptyListsTurnDefaultsOff(t *testing.T) {
	p := mustParse(t, minimal+"spec: {dataset: d, retraining: {on: []}, deployment: {production: {rollbackOn: []}}}\n")
	if len(p.Spec.Retraining.On) != 0 || len(p.Spec.Deployment.Production.RollbackOn) != 0 {
		t.Errorf("explicit [] replaced by a default: on=%q rollbackOn=%q", p.Spec.Retraining.On, p.Spec.Deployment.Production.RollbackOn)
	}
	p = mustParse(t, minimal+"spec: {dataset: d, training: {split: {stratify: false}}, validation: {schema: [{name: label, type: int, nullable: false}]}}\n")
	if *p.Spec.Training.Split.Stratify || *p.Spec.Validation.Schema.Columns[0].Nullable {
		t.Errorf("explicit false replaced by a default true")
	}
}

func TestStrategyDefaults(t *testing.T) {
	shadow := mustParse(t, minimal+"spec: {dataset: d, deployment: {production: {strategy: shadow}}}\n").Spec.Deployment.Production
	if shadow.ShadowDuration.Duration != DefaultShadowTime || shadow.Steps != nil || !shadow.StepDuration.IsZero() || len(shadow.RollbackOn) != 1 {
		t.Errorf("shadow defaults: %+v", shadow)
	}
	direct := mustParse(t, minimal+"spec: {dataset: d, deployment: {production: {strategy: direct}}}\n").Spec.Deployment.Production
	if direct.Steps != nil || !direct.StepDuration.IsZero() || !direct.ShadowDuration.IsZero() || len(direct.RollbackOn) != 0 {
		t.Errorf("direct defaults: %+v", direct)
	}
	ks := mustParse(t, minimal+"spec: {dataset: d, monitoring: {drift: {method: ks}}}\n").Spec.Monitoring.Drift
	if ks.Threshold != DefaultDriftThresholds[DriftKS] {
		t.Errorf("ks threshold = %v", ks.Threshold)
	}
}

func TestCommandTrainer(t *testing.T) {
	p := mustParse(t, minimal+`spec:
  dataset: d
  model: churn-xgb
  training:
    trainer: command
    command: [python, train.py, --epochs, "10"]
    image: python:3.12
    resources: {gpu: 1, gpuModel: h100}
`)
	if p.ModelName() != "churn-xgb" || len(p.Spec.Training.Command) != 4 || p.Spec.Training.Resources.GPU != 1 {
		t.Errorf("training = %+v", p.Spec.Training)
	}
}
