package registry_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	registryv1 "github.com/gyreml/gyre/pkg/pb/gyre/registry/v1"
)

func TestAuditRecordsWhoDidWhat(t *testing.T) {
	c, _ := newClient(t)
	if _, err := c.CreateModel(asActor("carol"), &registryv1.CreateModelRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ListAuditRecords(context.Background(), &registryv1.ListAuditRecordsRequest{Resource: "models/m"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetRecords()) != 1 {
		t.Fatalf("records = %v", resp.GetRecords())
	}
	r := resp.GetRecords()[0]
	if r.GetActor() != "carol" || r.GetAction() != "CreateModel" || r.GetRequestId() != "req-carol" || r.GetSeq() != 1 || r.GetPrevHash() != "" || r.GetHash() == "" {
		t.Fatalf("record = %v", r)
	}
}

// tamper changes the audit table as someone with database access would:
// past the append-only trigger.
func tamper(t *testing.T, dbURL, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE registry.audit_log DISABLE TRIGGER audit_log_append_only`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestAuditTamperingIsDetected(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
		badSeq    int64
	}{
		{"changed row", `UPDATE registry.audit_log SET actor = 'mallory' WHERE seq = 2`, 2},
		{"deleted row", `DELETE FROM registry.audit_log WHERE seq = 2`, 2},
		{"deleted tail", `DELETE FROM registry.audit_log WHERE seq = 4`, 4},
		{"rehashed row", `UPDATE registry.audit_log SET details = '{}', hash = md5('x') WHERE seq = 3`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, env := newClient(t)
			ctx := context.Background()
			for _, name := range []string{"a", "b", "c", "d"} {
				if _, err := c.CreateModel(ctx, &registryv1.CreateModelRequest{Name: name}); err != nil {
					t.Fatal(err)
				}
			}
			ok, err := c.VerifyAudit(ctx, &registryv1.VerifyAuditRequest{})
			if err != nil || !ok.GetOk() || ok.GetRecords() != 4 {
				t.Fatalf("clean chain: %v %v", ok, err)
			}
			// The log refuses changes through normal access.
			conn, err := pgx.Connect(ctx, env.DatabaseURL)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `DELETE FROM registry.audit_log WHERE seq = 1`); err == nil {
				t.Fatal("audit_log accepted a DELETE")
			}
			conn.Close(ctx)

			tamper(t, env.DatabaseURL, tc.sql)
			res, err := c.VerifyAudit(ctx, &registryv1.VerifyAuditRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if res.GetOk() || res.GetFirstBadSeq() != tc.badSeq || res.GetProblem() == "" {
				t.Fatalf("tampering not detected: %v", res)
			}
		})
	}
}
