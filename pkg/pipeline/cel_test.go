package pipeline

import (
	"strings"
	"testing"
)

func TestGatesEvaluate(t *testing.T) {
	vars := map[string]any{
		"metrics":  map[string]any{"auc": 0.85},
		"fairness": map[string]any{"sex": map[string]any{"demographic_parity_difference": 0.04}},
		"latency":  map[string]any{"p99_ms": 4.2},
		"champion": map[string]any{"metrics": map[string]any{"auc": 0.86}},
	}
	for expr, want := range map[string]bool{
		"metrics.auc >= 0.80":                                true,
		"fairness.sex.demographic_parity_difference <= 0.10": true,
		// An int literal against a double metric.
		"latency.p99_ms <= 5":                          true,
		"latency.p99_ms <= 4":                          false,
		"metrics.auc >= champion.metrics.auc - 0.01":   true,
		"metrics.auc > champion.metrics.auc":           false,
		"!has(importance.age) || importance.age < 0.5": true,
		// The guard docs/pipelines.md recommends for a first version.
		"!has(champion.metrics) || metrics.auc >= champion.metrics.auc": false,
	} {
		prg, err := CompileGate(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		vars["importance"] = map[string]any{}
		got, err := EvalBool(prg, vars)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", expr, got, err, want)
		}
	}
}

func TestChampionGuardPassesTheFirstVersion(t *testing.T) {
	prg, err := CompileGate("!has(champion.metrics) || metrics.auc >= champion.metrics.auc")
	if err != nil {
		t.Fatal(err)
	}
	got, err := EvalBool(prg, map[string]any{"metrics": map[string]any{"auc": 0.7}, "champion": map[string]any{}})
	if err != nil || !got {
		t.Errorf("no champion: %v, %v; want true", got, err)
	}
}

func TestMissingMetricIsAnEvaluationError(t *testing.T) {
	prg, err := CompileGate("metrics.f1 >= 0.5")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EvalBool(prg, map[string]any{"metrics": map[string]any{"auc": 0.9}}); err == nil || !strings.Contains(err.Error(), "f1") {
		t.Errorf("want an error naming f1, got %v", err)
	}
}

func TestRollbackAndPerformanceEvaluate(t *testing.T) {
	rb, err := CompileRollback("canary.error_rate > stable.error_rate + 0.01 || canary.latency.p99_ms > 10")
	if err != nil {
		t.Fatal(err)
	}
	got, err := EvalBool(rb, map[string]any{
		"canary": map[string]any{"error_rate": 0.002, "latency": map[string]any{"p99_ms": 12}},
		"stable": map[string]any{"error_rate": 0.001},
	})
	if err != nil || !got {
		t.Errorf("rollback = %v, %v; want true from the latency", got, err)
	}

	perf, err := CompilePerformance(`accuracy >= 0.8 && metrics["custom_score"] > 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err = EvalBool(perf, map[string]any{"accuracy": 0.75, "metrics": map[string]any{"custom_score": 2.0}})
	if err != nil || got {
		t.Errorf("performance = %v, %v; want false", got, err)
	}
	if _, err := CompilePerformance("accuracy >= metrics.accuracy && rmse < 1"); err != nil {
		t.Errorf("bare and map forms together: %v", err)
	}
}

func TestEnvironmentsKeepTheirVariablesApart(t *testing.T) {
	if _, err := CompileGate("canary.error_rate > 0.1"); err == nil {
		t.Error("a gate may not read rollout stats")
	}
	if _, err := CompileRollback("metrics.auc > 0.1"); err == nil {
		t.Error("a rollback condition may not read evaluation metrics")
	}
	if _, err := CompileGate("auc >= 0.8"); err == nil || !strings.Contains(err.Error(), "undeclared reference to 'auc'") {
		t.Errorf("bare metric in a gate: %v", err)
	}
}

func TestRunawayExpressionIsStopped(t *testing.T) {
	xs := "[0,1,2,3,4,5,6,7,8,9]"
	expr := xs + ".all(a, " + xs + ".all(b, " + xs + ".all(c, " + xs + ".all(d, " + xs + ".all(e, " + xs + ".all(f, " + xs + ".all(g, a+b+c+d+e+f+g >= 0)))))))"
	prg, err := CompileGate(expr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EvalBool(prg, map[string]any{}); err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Errorf("want the cost limit to stop it, got %v", err)
	}
}
