package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
)

// GateVariables are the maps an evaluation gate may read, e.g.
// metrics.auc, fairness.sex.demographic_parity_difference, latency.p99_ms,
// champion.metrics.auc (the current production version's reports).
var GateVariables = []string{"metrics", "fairness", "latency", "importance", "champion", "explainability"}

// RollbackVariables are the maps a rollback condition may read: the live
// stats of the new version (canary; in a shadow rollout, its mirrored
// traffic) and of the version it would replace (stable).
var RollbackVariables = []string{"canary", "stable"}

// PerformanceMetrics are the live metrics a monitoring check may name bare
// ("accuracy >= 0.8"), as doubles; the map metrics holds them and any other.
var PerformanceMetrics = []string{"accuracy", "auc", "f1", "precision", "recall", "rmse", "mae", "r2", "log_loss", "error_rate"}

// maxEvalCost stops an expression that would run away (nested comprehensions
// over large maps); real gates cost a few dozen.
const maxEvalCost = 1_000_000

var (
	gateEnv        = sync.OnceValues(func() (*cel.Env, error) { return mapsEnv(GateVariables) })
	rollbackEnv    = sync.OnceValues(func() (*cel.Env, error) { return mapsEnv(RollbackVariables) })
	performanceEnv = sync.OnceValues(func() (*cel.Env, error) {
		opts := []cel.EnvOption{cel.Variable("metrics", cel.MapType(cel.StringType, cel.DynType))}
		for _, m := range PerformanceMetrics {
			opts = append(opts, cel.Variable(m, cel.DoubleType))
		}
		return newEnv(opts...)
	})
)

// GateEnv is the environment evaluation gates compile and run in.
func GateEnv() (*cel.Env, error) { return gateEnv() }

// RollbackEnv is the environment rollback conditions compile and run in.
func RollbackEnv() (*cel.Env, error) { return rollbackEnv() }

// PerformanceEnv is the environment monitoring performance checks compile and run in.
func PerformanceEnv() (*cel.Env, error) { return performanceEnv() }

func mapsEnv(names []string) (*cel.Env, error) {
	opts := make([]cel.EnvOption, 0, len(names))
	for _, n := range names {
		opts = append(opts, cel.Variable(n, cel.MapType(cel.StringType, cel.DynType)))
	}
	return newEnv(opts...)
}

func newEnv(opts ...cel.EnvOption) (*cel.Env, error) {
	// Metrics arrive as doubles and people write "latency.p99_ms <= 5": compare numbers across types.
	env, err := cel.NewEnv(append(opts, cel.CrossTypeNumericComparisons(true))...)
	if err != nil {
		return nil, fmt.Errorf("create CEL environment: %w", err)
	}
	return env, nil
}

// CompileGate compiles an evaluation gate; it must return bool.
func CompileGate(expr string) (cel.Program, error) { return compileBool(gateEnv, expr) }

// CompileRollback compiles a rollback condition; it must return bool.
func CompileRollback(expr string) (cel.Program, error) { return compileBool(rollbackEnv, expr) }

// CompilePerformance compiles a monitoring performance check; it must return bool.
func CompilePerformance(expr string) (cel.Program, error) {
	return compileBool(performanceEnv, expr)
}

// compileBool type-checks expr and plans it. Its errors read as a field
// message: "undeclared reference to 'auc2' (column 1)".
func compileBool(envFn func() (*cel.Env, error), expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("empty expression")
	}
	env, err := envFn()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			msg := strings.TrimSuffix(e.Message, " (in container '')")
			msgs = append(msgs, fmt.Sprintf("%s (column %d)", msg, e.Location.Column()+1))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must return bool, returns %s", out)
	}
	prg, err := env.Program(ast, cel.CostLimit(maxEvalCost))
	if err != nil {
		return nil, fmt.Errorf("plan expression: %w", err)
	}
	return prg, nil
}

// EvalBool runs a program compiled by one of the Compile functions.
// A reference to a missing key (metrics.auc when no auc was computed) is an error.
func EvalBool(prg cel.Program, vars map[string]any) (bool, error) {
	out, _, err := prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not bool", out.Type())
	}
	return b, nil
}
