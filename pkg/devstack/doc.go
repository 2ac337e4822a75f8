// Package devstack starts the embedded infrastructure of `gyre dev` and tests:
// Postgres, NATS JetStream, S3.
//
// Postgres is a private cluster run from the PostgreSQL binaries installed on
// the machine (StartPostgres); NATS and S3 run inside the process.
package devstack
