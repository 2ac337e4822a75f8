package pipeline

import "time"

// Defaults of the fields whose zero value means "not set". docs/pipelines.md
// lists them for users.
const (
	DefaultTarget       = "label"
	DefaultTrainer      = TrainerGBDT
	DefaultCPU          = 1.0
	DefaultMemoryMiB    = 1024
	DefaultHoldout      = 0.2
	DefaultMaxAttempts  = 3
	DefaultTimeout      = time.Hour
	DefaultKAnonymity   = 5
	DefaultMinGroupSize = 30
	DefaultSmokeTests   = 100
	DefaultStepDuration = 2 * time.Minute
	DefaultShadowTime   = 10 * time.Minute
	DefaultWindow       = 15 * time.Minute
	DefaultMinSamples   = 100
	DefaultCooldown     = time.Hour
)

// DefaultSteps are the canary's traffic percentages.
var DefaultSteps = []int{10, 50, 100}

// DefaultRollbackOn rolls a canary or shadow back when it errs more than 1%.
var DefaultRollbackOn = []string{"canary.error_rate > 0.01"}

// DefaultDriftThresholds are per method, each on that method's own scale.
var DefaultDriftThresholds = map[string]float64{
	DriftPSI:         0.2,
	DriftKS:          0.1,
	DriftWasserstein: 0.1,
	DriftChi2:        0.1,
	DriftJS:          0.1,
}

// SetDefaults fills every field left unset. Numbers whose zero is not a
// meaningful value are unset when zero; lists are unset when absent (nil),
// so an explicit empty list keeps a default off. Calling it twice is harmless.
func (p *Pipeline) SetDefaults() {
	s := &p.Spec
	if s.Model == "" {
		s.Model = p.Metadata.Name
	}

	for i := range s.Validation.Schema.Columns {
		setBool(&s.Validation.Schema.Columns[i].Nullable, true)
	}
	priv := &s.Validation.Privacy
	setString(&priv.Action, PrivacyReject)
	if len(priv.QuasiIdentifiers) > 0 && priv.KAnonymity == 0 {
		priv.KAnonymity = DefaultKAnonymity
	}

	t := &s.Training
	setString(&t.Target, DefaultTarget)
	setString(&t.Trainer, DefaultTrainer)
	if t.Resources.CPU == 0 {
		t.Resources.CPU = DefaultCPU
	}
	if t.Resources.MemoryMiB == 0 {
		t.Resources.MemoryMiB = DefaultMemoryMiB
	}
	if t.Split.Holdout == 0 {
		t.Split.Holdout = DefaultHoldout
	}
	setBool(&t.Split.Stratify, true)
	if t.MaxAttempts == 0 {
		t.MaxAttempts = DefaultMaxAttempts
	}
	setDuration(&t.Timeout, DefaultTimeout)

	e := &s.Evaluation
	setString(&e.PrimaryMetric, PrimaryMetricAuto)
	if e.MinGroupSize == 0 {
		e.MinGroupSize = DefaultMinGroupSize
	}

	d := &s.Deployment
	setString(&d.Target, TargetLocal)
	if d.Staging.SmokeTest.Requests == 0 {
		d.Staging.SmokeTest.Requests = DefaultSmokeTests
	}
	prod := &d.Production
	setString(&prod.Approval, ApprovalAuto)
	setString(&prod.Strategy, StrategyCanary)
	switch prod.Strategy {
	case StrategyCanary:
		if prod.Steps == nil {
			prod.Steps = append([]int(nil), DefaultSteps...)
		}
		setDuration(&prod.StepDuration, DefaultStepDuration)
	case StrategyShadow:
		setDuration(&prod.ShadowDuration, DefaultShadowTime)
	}
	if prod.RollbackOn == nil {
		if prod.Strategy == StrategyDirect {
			prod.RollbackOn = []string{}
		} else {
			prod.RollbackOn = append([]string(nil), DefaultRollbackOn...)
		}
	}

	m := &s.Monitoring
	setDuration(&m.Window, DefaultWindow)
	if m.MinSamples == 0 {
		m.MinSamples = DefaultMinSamples
	}
	setString(&m.Drift.Method, DriftPSI)
	if m.Drift.Threshold == 0 {
		m.Drift.Threshold = DefaultDriftThresholds[m.Drift.Method]
	}

	r := &s.Retraining
	if r.On == nil {
		r.On = []string{TriggerNewData}
	}
	setDuration(&r.Cooldown, DefaultCooldown)
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setBool(b **bool, def bool) {
	if *b == nil {
		*b = &def
	}
}

func setDuration(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}
