package worker

// The built-in trainers register themselves by name ("builtin/logistic" ...).
import (
	_ "github.com/gyreml/gyre/pkg/model/gbdt"
	_ "github.com/gyreml/gyre/pkg/model/lightgbm"
	_ "github.com/gyreml/gyre/pkg/model/linear"
	_ "github.com/gyreml/gyre/pkg/model/xgboost"
)
