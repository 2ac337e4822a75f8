package worker

// The built-in trainers register themselves by name ("builtin/logistic" ...).
import (
	_ "github.com/gyreml/gyre/pkg/model/linear"
)
