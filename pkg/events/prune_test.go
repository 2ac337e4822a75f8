package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/gyreml/gyre/migrations"
	"github.com/gyreml/gyre/pkg/events"
	"github.com/gyreml/gyre/pkg/pg"
	"github.com/gyreml/gyre/pkg/pgtest"
)

func TestPruneKeepsTheRetentionWindowAndUnpublishedRows(t *testing.T) {
	ctx := context.Background()
	pool, err := pg.Connect(ctx, pgtest.DatabaseURL(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pg.Migrate(ctx, pool, "svc", migrations.FS, ""); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO outbox (id, subject, type, source, data, published_at) VALUES
		(gen_random_uuid(), 'gyre.a.old', 't', 's', '', now() - interval '40 days'),
		(gen_random_uuid(), 'gyre.a.new', 't', 's', '', now() - interval '1 day'),
		(gen_random_uuid(), 'gyre.a.pending', 't', 's', '', NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO handled_events (consumer, event_id, handled_at) VALUES ('c', 'old', now() - interval '40 days'), ('c', 'new', now())`); err != nil {
		t.Fatal(err)
	}
	r := &events.Relay{Pool: pool, Retention: 30 * 24 * time.Hour}
	n, err := r.Prune(ctx)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	var outbox, handled int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&outbox); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM handled_events`).Scan(&handled); err != nil {
		t.Fatal(err)
	}
	if outbox != 2 || handled != 1 {
		t.Fatalf("left %d outbox rows and %d handled records", outbox, handled)
	}
}
