package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewClient(t *testing.T) {
	// A kubeconfig is read, not dialled: building the client needs no cluster.
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kubeconfig := `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: test
  user: {token: not-a-real-token}
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(path); err != nil {
		t.Errorf("NewClient(kubeconfig) = %v", err)
	}
	if _, err := NewClient(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "kubeconfig ") {
		t.Errorf("NewClient(missing file) = %v", err)
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		if _, err := NewClient(""); err == nil || !strings.Contains(err.Error(), "in-cluster") {
			t.Errorf("NewClient(\"\") outside a cluster = %v", err)
		}
	}
}
