package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLayersApplyInOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gyre.yaml")
	t.Setenv("PGPASS", "s3cret")
	writeFile(t, path, `
grpcAddr: 127.0.0.1:7000
database:
  url: postgres://gyre:${PGPASS}@db:5432/gyre
s3:
  endpoint: minio:9000
  secretKey: topsecret
`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GYRE_GRPC_ADDR": "127.0.0.1:7001", "GYRE_SHUTDOWN_TIMEOUT": "5s", "GYRE_TARGETS": "registry, deployer"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:7001" || c.ShutdownTimeout != 5*time.Second || c.HTTPAddr != "127.0.0.1:8080" {
		t.Fatalf("layers not applied: %+v", c)
	}
	if got := strings.Join(c.Targets, ","); got != "registry,deployer" {
		t.Fatalf("targets = %q", got)
	}
	if c.Database.URL != "postgres://gyre:s3cret@db:5432/gyre" {
		t.Fatalf("env not expanded: %s", c.Database.URL)
	}
	printed := c.Print()
	for _, secret := range []string{"s3cret", "topsecret"} {
		if strings.Contains(printed, secret) {
			t.Fatalf("Print leaks %q:\n%s", secret, printed)
		}
	}
	if !strings.Contains(printed, "db:5432") {
		t.Fatalf("Print hides the database host:\n%s", printed)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gyre.yaml")
	writeFile(t, path, "database:\n  urll: x\n")
	c := Default()
	err := c.LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), "urll") {
		t.Fatalf("want an error naming urll, got %v", err)
	}
}

func TestUnsetEnvInFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gyre.yaml")
	writeFile(t, path, "database:\n  url: ${GYRE_TEST_SURELY_UNSET}\n")
	c := Default()
	if err := c.LoadFile(path); err == nil || !strings.Contains(err.Error(), "GYRE_TEST_SURELY_UNSET") {
		t.Fatalf("want an error naming the variable, got %v", err)
	}
}

func TestValidateNamesEveryBadKey(t *testing.T) {
	c := Default()
	c.GRPCAddr = "nope"
	c.Log.Level = "loud"
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, key := range []string{"grpcAddr", "log.level", "database.url", "s3.endpoint"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

func TestEnvNames(t *testing.T) {
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"GYRE_DATABASE_URL", "GYRE_S3_SECRET_KEY", "GYRE_NATS_URL", "GYRE_HTTP_ADDR"} {
		if !strings.Contains(names, want) {
			t.Errorf("missing %s in %s", want, names)
		}
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
