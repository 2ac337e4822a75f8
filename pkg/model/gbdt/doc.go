// Package gbdt is Gyre's histogram gradient-boosted trees, in pure Go:
// binary logloss, multiclass softmax and squared-error regression, with
// early stopping on a validation set, learned default directions for
// missing values, and categorical splits on category sets. Its parameters
// follow xgboost's tree_method=hist. Training is deterministic for a seed,
// whatever the number of cores it uses.
//
// Importing the package registers the "builtin/gbdt" trainer (package
// train) and the "gyre/gbdt" bundle format (package model). Train is the
// same algorithm on plain columns. docs/gbdt.md describes the parameters,
// the handling of missing and categorical values, and the benchmark
// against xgboost.
package gbdt
