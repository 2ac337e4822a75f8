// Package app runs a set of modules in dependency order: every module is
// initialised (dependencies first), then started (dependencies first), and
// stopped in reverse, so a service never outlives what it depends on.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"
)

// Service is a started module's running part. Stop must drain: finish or hand
// back in-flight work within ctx's deadline.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Drainer is a Service that takes traffic (a server): on shutdown every
// Drainer is drained first, before any module stops, so in-flight requests
// finish while the pools and connections they use are still open.
type Drainer interface {
	Drain(ctx context.Context) error
}

// Module is one entry of the module table.
type Module struct {
	Name string
	Deps []string
	// Init builds the module once its dependencies are initialised; it may
	// return nil when the module has nothing to run (e.g. a target alias).
	Init func(ctx context.Context) (Service, error)
}

// Manager resolves targets to modules and runs them.
type Manager struct {
	modules map[string]Module
	log     *slog.Logger
	running []started
}

type started struct {
	name string
	svc  Service
}

func NewManager(log *slog.Logger, modules ...Module) (*Manager, error) {
	m := &Manager{modules: map[string]Module{}, log: log}
	for _, mod := range modules {
		if _, dup := m.modules[mod.Name]; dup {
			return nil, fmt.Errorf("module %q registered twice", mod.Name)
		}
		m.modules[mod.Name] = mod
	}
	for _, mod := range modules {
		for _, d := range mod.Deps {
			if _, ok := m.modules[d]; !ok {
				return nil, fmt.Errorf("module %q depends on unknown module %q", mod.Name, d)
			}
		}
	}
	return m, nil
}

// Order lists the modules needed for targets, each after its dependencies.
func (m *Manager) Order(targets []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		mod, ok := m.modules[name]
		if !ok {
			return fmt.Errorf("unknown target %q (known: %s)", name, m.knownNames())
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("dependency cycle: %v", append(path, name))
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range mod.Deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, t := range targets {
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func (m *Manager) knownNames() []string {
	names := make([]string, 0, len(m.modules))
	for n := range m.modules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Start initialises then starts every module the targets need. On failure the
// modules already started are stopped again.
func (m *Manager) Start(ctx context.Context, targets []string) error {
	order, err := m.Order(targets)
	if err != nil {
		return err
	}
	var inited []started
	for _, name := range order {
		svc, err := m.modules[name].Init(ctx)
		if err != nil {
			m.stopAll(context.Background(), inited, time.Now().Add(10*time.Second))
			return fmt.Errorf("init %s: %w", name, err)
		}
		if svc != nil {
			inited = append(inited, started{name, svc})
		}
	}
	for i, s := range inited {
		t0 := time.Now()
		if err := s.svc.Start(ctx); err != nil {
			m.stopAll(context.Background(), inited[:i], time.Now().Add(10*time.Second))
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		m.log.Debug("module started", "module", s.name, "duration_ms", time.Since(t0).Milliseconds())
	}
	m.running = inited
	return nil
}

// Stop drains the modules that take traffic, then stops every running module
// in reverse order, all within ctx's deadline.
func (m *Manager) Stop(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	var errs []error
	for _, s := range m.running {
		if d, ok := s.svc.(Drainer); ok {
			dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
			if err := d.Drain(dctx); err != nil {
				errs = append(errs, fmt.Errorf("drain %s: %w", s.name, err))
			}
			cancel()
		}
	}
	errs = append(errs, m.stopAll(ctx, m.running, deadline))
	m.running = nil
	return errors.Join(errs...)
}

func (m *Manager) stopAll(ctx context.Context, mods []started, deadline time.Time) error {
	var errs []error
	for _, s := range slices.Backward(mods) {
		sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		if err := s.svc.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.name, err))
			m.log.Error("module stop failed", "module", s.name, "err", err)
		} else {
			m.log.Debug("module stopped", "module", s.name)
		}
		cancel()
	}
	return errors.Join(errs...)
}

// Funcs adapts two functions to a Service.
type Funcs struct {
	StartFunc func(context.Context) error
	StopFunc  func(context.Context) error
}

func (f Funcs) Start(ctx context.Context) error {
	if f.StartFunc == nil {
		return nil
	}
	return f.StartFunc(ctx)
}

func (f Funcs) Stop(ctx context.Context) error {
	if f.StopFunc == nil {
		return nil
	}
	return f.StopFunc(ctx)
}
