package pipeline

import (
	"bytes"
	"testing"
)

// The DESIGN.md example rewritten: other key order, block style, defaults
// written out, equivalent durations, "infer" spelt out, model named.
const creditRiskReordered = `
kind: Pipeline
apiVersion: gyre.dev/v1
spec:
  retraining:
    schedule: "0 3 * * 0"
    cooldown: 60m
    on: [new_data, drift, performance, schedule]
  monitoring:
    performance: ["accuracy >= 0.8"]
    drift: {threshold: 0.20, method: psi}
    window: 900s
    minSamples: 100
  deployment:
    target: local
    production:
      rollbackOn:
        - "canary.error_rate > 0.01"
        - "canary.latency.p99_ms > 10"
      stepDuration: 120s
      steps: [10, 50, 100]
      strategy: canary
      approval: auto
    staging: {smokeTest: {maxErrorRate: 0.0, requests: 100}}
  evaluation:
    minGroupSize: 30
    primaryMetric: auto
    gates:
      - metrics.auc >= 0.80
      - fairness.sex.demographic_parity_difference <= 0.10
      - latency.p99_ms <= 5
      - metrics.auc >= champion.metrics.auc - 0.01
    sensitiveAttributes: [sex]
  training:
    timeout: 1h
    maxAttempts: 3
    split: {stratify: true, seed: 7, holdout: 0.2}
    resources: {gpu: 0, memoryMiB: 2048, cpu: 2.0}
    params: {learningRate: 0.1, maxDepth: 6, trees: 200.0}
    trainer: builtin/gbdt
    target: default
  validation:
    privacy:
      kAnonymity: 5
      quasiIdentifiers: [zip, birth_year, sex]
      action: reject
      detect: [email, phone, credit_card, ssn, cpf, ip_address]
    rules:
      - {max: 120, min: 18, column: age}
      - {notNull: true, column: income}
    schema: infer
  model: credit-risk
  dataset: credit-applications
metadata: {name: credit-risk}
`

func canonical(t *testing.T, doc []byte) []byte {
	t.Helper()
	p, err := Parse(doc)
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	c, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCanonicalIgnoresHowTheSpecIsWritten(t *testing.T) {
	design := canonical(t, readExample(t, "credit-risk.yaml"))
	reordered := canonical(t, []byte(creditRiskReordered))
	if !bytes.Equal(design, reordered) {
		t.Errorf("same spec, different canonical forms:\n%s\n%s", design, reordered)
	}
	p, _ := Parse([]byte(creditRiskReordered))
	q, _ := Parse(readExample(t, "credit-risk.yaml"))
	if p.Digest() != q.Digest() || len(p.Digest()) != 64 {
		t.Errorf("digests %q and %q", p.Digest(), q.Digest())
	}
}

func TestCanonicalChangesWithAnyValue(t *testing.T) {
	base := canonical(t, []byte(creditRiskReordered))
	for _, change := range [][2]string{
		{"holdout: 0.2", "holdout: 0.25"},
		{"- metrics.auc >= 0.80", "- metrics.auc >= 0.81"},
		{"steps: [10, 50, 100]", "steps: [20, 50, 100]"},
		{"trees: 200.0", "trees: 201"},
		{"stratify: true", "stratify: false"},
		{"cooldown: 60m", "cooldown: 61m"},
		{"model: credit-risk", "model: credit-risk-2"},
	} {
		doc := bytes.Replace([]byte(creditRiskReordered), []byte(change[0]), []byte(change[1]), 1)
		if bytes.Equal(doc, []byte(creditRiskReordered)) {
			t.Fatalf("%q not in the document", change[0])
		}
		if bytes.Equal(canonical(t, doc), base) {
			t.Errorf("changing %q to %q left the canonical form as it was", change[0], change[1])
		}
	}
}

func TestCanonicalRoundTrips(t *testing.T) {
	for _, name := range []string{"minimal.yaml", "credit-risk.yaml"} {
		first := canonical(t, readExample(t, name))
		if again := canonical(t, first); !bytes.Equal(first, again) {
			t.Errorf("%s: parsing the canonical form changes it:\n%s\n%s", name, first, again)
		}
	}
}

func TestCanonicalDefaultsACopy(t *testing.T) {
	p := &Pipeline{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: "churn"}, Spec: Spec{Dataset: "customers"}}
	got, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, canonical(t, []byte(minimal+"spec: {dataset: customers}\n"))) {
		t.Errorf("canonical of an undefaulted value differs from the parsed one:\n%s", got)
	}
	if p.Spec.Model != "" || p.Spec.Training.Trainer != "" {
		t.Errorf("Canonical modified its receiver: %+v", p.Spec)
	}
}
