// Package migrations embeds every service's SQL migrations:
// migrations/<service>/NNN_name.sql, plus migrations/common (the outbox and
// handled-event tables) that pg.Migrate applies to every service's schema first.
package migrations

import "embed"

// FS holds <dir>/NNN_name.sql for every service directory and common.
//
//go:embed */*.sql
var FS embed.FS
