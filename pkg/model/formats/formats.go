// Package formats registers every model format Gyre reads (and the built-in
// trainers that write them): import it for its side effects wherever bundles
// are loaded or models trained.
package formats

import (
	_ "github.com/gyreml/gyre/pkg/model/gbdt"
	_ "github.com/gyreml/gyre/pkg/model/lightgbm"
	_ "github.com/gyreml/gyre/pkg/model/linear"
	_ "github.com/gyreml/gyre/pkg/model/xgboost"
)
