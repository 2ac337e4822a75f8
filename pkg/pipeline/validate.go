package pipeline

import (
	"errors"
	"fmt"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([-._/A-Za-z0-9]{0,61}[A-Za-z0-9])?$`)
)

// ValidName checks a pipeline, model or dataset name: a DNS label, 1 to 63
// lowercase letters, digits and '-', starting and ending with a letter or digit.
func ValidName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if !nameRE.MatchString(s) {
		return fmt.Errorf("invalid name %q: want 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", s)
	}
	return nil
}

// cronReference is where Validate looks for a schedule's next firing; any
// fixed date works, since Next searches years ahead.
var cronReference = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Validate checks the whole spec and returns every problem, section by
// section. It expects defaults to be set (SetDefaults): an unset field it
// needs is reported as missing.
func (p *Pipeline) Validate() Errors {
	v := validator{}
	if p.APIVersion != APIVersion {
		v.enum("apiVersion", p.APIVersion, []string{APIVersion})
	}
	if p.Kind != Kind {
		v.enum("kind", p.Kind, []string{Kind})
	}
	v.name("metadata.name", p.Metadata.Name)
	for k, val := range sortedMap(p.Metadata.Labels) {
		path := child("metadata.labels", k)
		if !labelKeyRE.MatchString(k) {
			v.errs.add(path, "invalid label key: want 1-63 letters, digits, '-', '_', '.' or '/', starting and ending with a letter or digit")
		}
		if len(val) > 256 {
			v.errs.add(path, "label value longer than 256 characters")
		}
	}
	s := &p.Spec
	// A model defaulted from a bad metadata.name is already reported there.
	if s.Model != p.Metadata.Name {
		v.name("spec.model", s.Model)
	}
	v.name("spec.dataset", s.Dataset)
	v.validation(s)
	v.training(s)
	v.evaluation(s)
	v.deployment(&s.Deployment)
	v.monitoring(&s.Monitoring)
	v.retraining(s)
	return v.errs
}

type validator struct {
	errs Errors
}

func (v *validator) name(path, s string) {
	if err := ValidName(s); err != nil {
		v.errs.add(path, "%v", err)
	}
}

// enum reports a value outside the allowed ones and lists them.
func (v *validator) enum(path, got string, allowed []string) bool {
	if slices.Contains(allowed, got) {
		return true
	}
	if got == "" {
		v.errs.add(path, "required: one of %s", strings.Join(allowed, ", "))
	} else {
		v.errs.add(path, "%q is not one of %s", got, strings.Join(allowed, ", "))
	}
	return false
}

// enumList checks each element of a list and reports duplicates.
func (v *validator) enumList(path string, got, allowed []string) {
	for i, g := range got {
		if v.enum(index(path, i), g, allowed) && slices.Index(got, g) < i {
			v.errs.add(index(path, i), "%q is listed twice", g)
		}
	}
}

// columns checks a list of column names: non-empty, unique, and declared
// when the schema is.
func (v *validator) columns(path string, names []string, schema Schema) {
	for i, n := range names {
		v.column(index(path, i), n, schema)
		if n != "" && slices.Index(names, n) < i {
			v.errs.add(index(path, i), "column %q is listed twice", n)
		}
	}
}

func (v *validator) column(path, name string, schema Schema) {
	if name == "" {
		v.errs.add(path, "required: a column name")
		return
	}
	if !schema.Infer() && !slices.ContainsFunc(schema.Columns, func(c Column) bool { return c.Name == name }) {
		v.errs.add(path, "column %q is not in spec.validation.schema", name)
	}
}

func (v *validator) positive(path string, x float64) {
	if x <= 0 {
		v.errs.add(path, "must be positive, got %v", x)
	}
}

func (v *validator) positiveDuration(path string, d Duration) {
	if d.Duration <= 0 {
		v.errs.add(path, "must be positive, got %s", d)
	}
}

func (v *validator) expressions(path string, exprs []string, compile func(string) (cel.Program, error)) {
	for i, e := range exprs {
		if _, err := compile(e); err != nil {
			v.errs.add(index(path, i), "%v", err)
		}
	}
}

func (v *validator) validation(s *Spec) {
	const path = "spec.validation"
	schema := s.Validation.Schema
	for i, c := range schema.Columns {
		cp := index(child(path, "schema"), i)
		if c.Name == "" {
			v.errs.add(child(cp, "name"), "required")
		} else if slices.IndexFunc(schema.Columns, func(o Column) bool { return o.Name == c.Name }) < i {
			v.errs.add(child(cp, "name"), "column %q is declared twice", c.Name)
		}
		v.enum(child(cp, "type"), c.Type, ColumnTypes)
	}

	for i, r := range s.Validation.Rules {
		v.rule(index(child(path, "rules"), i), r, schema)
	}

	priv := s.Validation.Privacy
	pp := child(path, "privacy")
	v.enumList(child(pp, "detect"), priv.Detect, Detectors)
	v.enum(child(pp, "action"), priv.Action, PrivacyActions)
	v.columns(child(pp, "quasiIdentifiers"), priv.QuasiIdentifiers, schema)
	switch {
	case len(priv.QuasiIdentifiers) > 0 && priv.KAnonymity < 2:
		v.errs.add(child(pp, "kAnonymity"), "must be at least 2, got %d", priv.KAnonymity)
	case len(priv.QuasiIdentifiers) == 0 && priv.KAnonymity != 0:
		v.errs.add(child(pp, "kAnonymity"), "applies only with quasiIdentifiers")
	}
}

func (v *validator) rule(path string, r Rule, schema Schema) {
	columnChecks := r.NotNull || r.Min != nil || r.Max != nil || len(r.Allowed) > 0 || r.Regex != "" || r.Unique || r.MaxNullFraction != nil
	rowChecks := r.MinRows != 0 || r.MaxRows != 0
	if r.Column == "" {
		if !rowChecks {
			v.errs.add(path, "want column with a check (notNull, min, max, allowed, regex, unique, maxNullFraction), or minRows/maxRows")
			return
		}
		if columnChecks {
			v.errs.add(child(path, "column"), "required: the rule has column checks")
		}
	} else {
		v.column(child(path, "column"), r.Column, schema)
		if !columnChecks {
			v.errs.add(path, "no check: want notNull, min, max, allowed, regex, unique or maxNullFraction")
		}
		if rowChecks {
			v.errs.add(path, "minRows and maxRows apply to the whole dataset: put them in a rule without column")
		}
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		v.errs.add(child(path, "max"), "must be at least min (%v), got %v", *r.Min, *r.Max)
	}
	if r.Regex != "" {
		if _, err := regexp.Compile(r.Regex); err != nil {
			v.errs.add(child(path, "regex"), "%v", err)
		}
	}
	if f := r.MaxNullFraction; f != nil && (*f < 0 || *f > 1) {
		v.errs.add(child(path, "maxNullFraction"), "must be between 0 and 1, got %v", *f)
	}
	if r.MinRows < 0 {
		v.errs.add(child(path, "minRows"), "must not be negative, got %d", r.MinRows)
	}
	if r.MaxRows < 0 {
		v.errs.add(child(path, "maxRows"), "must not be negative, got %d", r.MaxRows)
	}
	if r.MinRows > 0 && r.MaxRows > 0 && r.MinRows > r.MaxRows {
		v.errs.add(child(path, "maxRows"), "must be at least minRows (%d), got %d", r.MinRows, r.MaxRows)
	}
}

func (v *validator) training(s *Spec) {
	const path = "spec.training"
	t := s.Training
	v.column(child(path, "target"), t.Target, s.Validation.Schema)
	command := t.Trainer == TrainerCommand
	if v.enum(child(path, "trainer"), t.Trainer, Trainers) {
		switch {
		case command && len(t.Command) == 0:
			v.errs.add(child(path, "command"), "required for trainer command: the program and its arguments")
		case !command && len(t.Command) > 0:
			v.errs.add(child(path, "command"), "applies only to trainer command")
		}
		if !command && t.Image != "" {
			v.errs.add(child(path, "image"), "applies only to trainer command")
		}
		if !command && t.Resources.GPU > 0 {
			v.errs.add(child(path, "resources.gpu"), "built-in trainers run on CPU: gpu applies only to trainer command")
		}
	}
	for i, arg := range t.Command {
		if arg == "" {
			v.errs.add(index(child(path, "command"), i), "empty argument")
		}
	}

	rp := child(path, "resources")
	v.positive(child(rp, "cpu"), t.Resources.CPU)
	v.positive(child(rp, "memoryMiB"), float64(t.Resources.MemoryMiB))
	if t.Resources.GPU < 0 {
		v.errs.add(child(rp, "gpu"), "must not be negative, got %d", t.Resources.GPU)
	}
	if t.Resources.GPUModel != "" && t.Resources.GPU == 0 {
		v.errs.add(child(rp, "gpuModel"), "applies only when gpu is at least 1")
	}

	if h := t.Split.Holdout; h <= 0 || h >= 1 {
		v.errs.add(child(path, "split.holdout"), "must be between 0 and 1 (exclusive), got %v", h)
	}
	if t.MaxAttempts < 1 {
		v.errs.add(child(path, "maxAttempts"), "must be at least 1, got %d", t.MaxAttempts)
	}
	v.positiveDuration(child(path, "timeout"), t.Timeout)
}

func (v *validator) evaluation(s *Spec) {
	const path = "spec.evaluation"
	e := s.Evaluation
	v.columns(child(path, "sensitiveAttributes"), e.SensitiveAttributes, s.Validation.Schema)
	for i, a := range e.SensitiveAttributes {
		if a == s.Training.Target {
			v.errs.add(index(child(path, "sensitiveAttributes"), i), "%q is the training target", a)
		}
	}

	allowed := append([]string{PrimaryMetricAuto}, ClassifierMetrics...)
	switch s.Training.Trainer {
	case TrainerLogistic:
	case TrainerLinear:
		allowed = append([]string{PrimaryMetricAuto}, RegressionMetrics...)
	default:
		allowed = append(allowed, RegressionMetrics...)
	}
	v.enum(child(path, "primaryMetric"), e.PrimaryMetric, allowed)

	v.expressions(child(path, "gates"), e.Gates, CompileGate)
	if e.MinGroupSize < 1 {
		v.errs.add(child(path, "minGroupSize"), "must be at least 1, got %d", e.MinGroupSize)
	}
}

func (v *validator) deployment(d *Deployment) {
	const path = "spec.deployment"
	v.enum(child(path, "target"), d.Target, Targets)

	st := d.Staging.SmokeTest
	sp := child(path, "staging.smokeTest")
	if st.Requests < 1 {
		v.errs.add(child(sp, "requests"), "must be at least 1, got %d", st.Requests)
	}
	if st.MaxErrorRate < 0 || st.MaxErrorRate > 1 {
		v.errs.add(child(sp, "maxErrorRate"), "must be between 0 and 1, got %v", st.MaxErrorRate)
	}
	if st.MaxLatencyMs < 0 {
		v.errs.add(child(sp, "maxLatencyMs"), "must not be negative, got %v", st.MaxLatencyMs)
	}

	prod := d.Production
	pp := child(path, "production")
	v.enum(child(pp, "approval"), prod.Approval, Approvals)
	if v.enum(child(pp, "strategy"), prod.Strategy, Strategies) {
		v.rollout(pp, prod)
	}
	v.expressions(child(pp, "rollbackOn"), prod.RollbackOn, CompileRollback)
}

func (v *validator) rollout(path string, prod Production) {
	canary, shadow := prod.Strategy == StrategyCanary, prod.Strategy == StrategyShadow
	switch {
	case canary:
		v.steps(child(path, "steps"), prod.Steps)
		v.positiveDuration(child(path, "stepDuration"), prod.StepDuration)
	case len(prod.Steps) > 0:
		v.errs.add(child(path, "steps"), "applies only to strategy canary")
	}
	if !canary && !prod.StepDuration.IsZero() {
		v.errs.add(child(path, "stepDuration"), "applies only to strategy canary")
	}
	if shadow {
		v.positiveDuration(child(path, "shadowDuration"), prod.ShadowDuration)
	} else if !prod.ShadowDuration.IsZero() {
		v.errs.add(child(path, "shadowDuration"), "applies only to strategy shadow")
	}
	if prod.Strategy == StrategyDirect && len(prod.RollbackOn) > 0 {
		v.errs.add(child(path, "rollbackOn"), "applies only to strategies canary and shadow")
	}
}

// steps must rise strictly from 1..100 and end at 100, so the last step is full traffic.
func (v *validator) steps(path string, steps []int) {
	if len(steps) == 0 {
		v.errs.add(path, "required for strategy canary: traffic percentages ending at 100")
		return
	}
	for i, s := range steps {
		switch {
		case s < 1 || s > 100:
			v.errs.add(index(path, i), "must be a percentage from 1 to 100, got %d", s)
		case i > 0 && s <= steps[i-1]:
			v.errs.add(index(path, i), "must be greater than the step before (%d), got %d", steps[i-1], s)
		}
	}
	if last := steps[len(steps)-1]; last != 100 {
		v.errs.add(path, "the last step must be 100, got %d", last)
	}
}

func (v *validator) monitoring(m *Monitoring) {
	const path = "spec.monitoring"
	v.positiveDuration(child(path, "window"), m.Window)
	if m.MinSamples < 1 {
		v.errs.add(child(path, "minSamples"), "must be at least 1, got %d", m.MinSamples)
	}
	if v.enum(child(path, "drift.method"), m.Drift.Method, DriftMethods) {
		v.positive(child(path, "drift.threshold"), m.Drift.Threshold)
	}
	v.expressions(child(path, "performance"), m.Performance, CompilePerformance)
}

func (v *validator) retraining(s *Spec) {
	const path = "spec.retraining"
	r := s.Retraining
	v.enumList(child(path, "on"), r.On, Triggers)
	onSchedule := slices.Contains(r.On, TriggerSchedule)
	switch {
	case onSchedule && r.Schedule == "":
		v.errs.add(child(path, "schedule"), "required when retraining on schedule: a cron expression like \"0 3 * * 0\"")
	case !onSchedule && r.Schedule != "":
		v.errs.add(child(path, "schedule"), "set, but retraining.on does not include schedule")
	}
	if r.Schedule != "" {
		if c, err := ParseCron(r.Schedule); err != nil {
			v.errs.add(child(path, "schedule"), "%v", err)
		} else if c.Next(cronReference).IsZero() {
			v.errs.add(child(path, "schedule"), "%q never fires", r.Schedule)
		}
	}
	if slices.Contains(r.On, TriggerPerformance) && len(s.Monitoring.Performance) == 0 {
		v.errs.add(child(path, "on"), "performance needs spec.monitoring.performance checks")
	}
	v.positiveDuration(child(path, "cooldown"), r.Cooldown)
}

// sortedMap iterates m by key, so errors come out in a stable order.
func sortedMap[V any](m map[string]V) iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}
