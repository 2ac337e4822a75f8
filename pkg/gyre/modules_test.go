package gyre_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/gyre"
	"github.com/gyreml/gyre/pkg/gyretest"
)

func TestUnknownTargetNamesTheKnownOnes(t *testing.T) {
	cfg := config.Default()
	cfg.Targets = []string{"registy"}
	p, err := gyre.New(cfg, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), `unknown target "registy"`) || !strings.Contains(err.Error(), "registry") {
		t.Fatalf("err = %v", err)
	}
}

func TestATargetWithoutItsPeerSaysWhatToConfigure(t *testing.T) {
	// Needs Postgres (pgtest) and runs in-process NATS and S3.
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	ft := &fatalCatcher{TB: t}
	func() {
		defer func() { recover() }()
		gyretest.Start(ft, gyre.Ingestion)
	}()
	if !strings.Contains(ft.msg, "services.registry") {
		t.Fatalf("starting ingestion alone: %q", ft.msg)
	}
}

// fatalCatcher records the message of a Fatalf instead of failing the test.
type fatalCatcher struct {
	testing.TB
	msg string
}

func (f *fatalCatcher) Fatalf(format string, args ...any) {
	f.msg = strings.TrimSpace(fmt.Sprintf(format, args...))
	panic("fatal")
}
