// Package tabular reads dataset files (CSV, JSON Lines, Parquet; gzip
// recognised by its magic bytes) as a stream of records in bounded memory,
// writes the canonical stored form of a dataset version (CSV), infers a
// schema in the same pass and compares schemas across versions.
//
// Every reader renders values as text, the same way whatever the format, so
// the same data gives the same records, the same canonical bytes and the
// same schema. Bad input is a *ParseError naming the line (or row) and the
// column. docs/datasets.md is the user's view of all of it.
package tabular
