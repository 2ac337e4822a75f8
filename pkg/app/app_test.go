package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestStartsDepsFirstStopsThemLast(t *testing.T) {
	var events []string
	mod := func(name string, deps ...string) Module {
		return Module{Name: name, Deps: deps, Init: func(context.Context) (Service, error) {
			events = append(events, "init "+name)
			return Funcs{
				StartFunc: func(context.Context) error { events = append(events, "start "+name); return nil },
				StopFunc:  func(context.Context) error { events = append(events, "stop "+name); return nil },
			}, nil
		}}
	}
	m, err := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)),
		mod("db"), mod("server"), mod("registry", "db", "server"), Module{Name: "all", Deps: []string{"registry"}, Init: func(context.Context) (Service, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), []string{"all"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"init db", "init server", "init registry", "start db", "start server", "start registry", "stop registry", "stop server", "stop db"}
	if !slices.Equal(events, want) {
		t.Fatalf("got %v\nwant %v", events, want)
	}
}

func TestFailedStartStopsWhatStarted(t *testing.T) {
	var stopped []string
	ok := func(name string, deps ...string) Module {
		return Module{Name: name, Deps: deps, Init: func(context.Context) (Service, error) {
			return Funcs{StopFunc: func(context.Context) error { stopped = append(stopped, name); return nil }}, nil
		}}
	}
	bad := Module{Name: "bad", Deps: []string{"a"}, Init: func(context.Context) (Service, error) {
		return Funcs{StartFunc: func(context.Context) error { return errors.New("boom") }}, nil
	}}
	m, _ := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), ok("a"), bad)
	err := m.Start(context.Background(), []string{"bad"})
	if err == nil || !strings.Contains(err.Error(), "start bad: boom") {
		t.Fatalf("err = %v", err)
	}
	if !slices.Equal(stopped, []string{"a"}) {
		t.Fatalf("stopped %v", stopped)
	}
}

func TestUnknownTargetAndCycle(t *testing.T) {
	noop := func(context.Context) (Service, error) { return nil, nil }
	m, _ := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)),
		Module{Name: "x", Deps: []string{"y"}, Init: noop}, Module{Name: "y", Deps: []string{"x"}, Init: noop})
	if _, err := m.Order([]string{"nope"}); err == nil || !strings.Contains(err.Error(), `unknown target "nope"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := m.Order([]string{"x"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewManager(slog.Default(), Module{Name: "z", Deps: []string{"missing"}, Init: noop}); err == nil {
		t.Fatal("want error for unknown dependency")
	}
}
