package gates

import (
	"strings"
	"testing"
)

func inputs(champion map[string]any) Inputs {
	return Inputs{
		"metrics":  {"auc": 0.86, "f1": 0.71},
		"fairness": {"sex": map[string]any{"demographic_parity_difference": 0.04}},
		"latency":  {"p99_ms": 3.2},
		"champion": champion,
	}
}

func TestGatesPassAndReportWhatTheyRead(t *testing.T) {
	res, ok := Evaluate([]string{
		"metrics.auc >= 0.80",
		"fairness.sex.demographic_parity_difference <= 0.10",
		"latency.p99_ms <= 5",
		"metrics.auc >= champion.metrics.auc - 0.01",
	}, inputs(map[string]any{"metrics": map[string]any{"auc": 0.85}}))
	if !ok {
		t.Fatalf("verdict failed: %+v", res)
	}
	if res[1].Values["fairness.sex.demographic_parity_difference"] != 0.04 || res[3].Values["champion.metrics.auc"] != 0.85 {
		t.Fatalf("values read: %+v", res)
	}
}

func TestAFailingGateSaysWithWhichValues(t *testing.T) {
	res, ok := Evaluate([]string{"metrics.auc >= 0.9", "latency.p99_ms <= 5"}, inputs(nil))
	if ok || res[0].Passed || !res[1].Passed {
		t.Fatalf("%+v", res)
	}
	if res[0].Reason != "false for metrics.auc = 0.86" {
		t.Fatalf("reason = %q", res[0].Reason)
	}
}

func TestAnUnknownValueFailsLoudlyNamingIt(t *testing.T) {
	res, ok := Evaluate([]string{"metrics.auc2 >= 0.5", "fairness.age.demographic_parity_difference < 0.1"}, inputs(nil))
	if ok {
		t.Fatal("passed with unknown values")
	}
	if !strings.Contains(res[0].Reason, "unknown value metrics.auc2 (known under metrics: auc, f1)") {
		t.Fatalf("reason = %q", res[0].Reason)
	}
	if !strings.Contains(res[1].Reason, "unknown value fairness.age (known under fairness: sex)") {
		t.Fatalf("reason = %q", res[1].Reason)
	}
}

func TestChampionGatesAreSkippedWithoutAChampion(t *testing.T) {
	res, ok := Evaluate([]string{"metrics.auc >= champion.metrics.auc - 0.01"}, inputs(nil))
	if !ok || !res[0].Skipped || !strings.Contains(res[0].Reason, "no champion") {
		t.Fatalf("%+v", res)
	}
}

func TestCompileErrorsAndNaNFail(t *testing.T) {
	in := inputs(nil)
	in["metrics"]["ece"] = nanValue()
	res, ok := Evaluate([]string{"metrics.auc >=", "metrics.ece < 0.1"}, in)
	if ok || !strings.Contains(res[0].Reason, "does not compile") || !strings.Contains(res[1].Reason, "undefined (NaN)") {
		t.Fatalf("%+v", res)
	}
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}
