package evaluator

// Every model format the evaluator may be asked to load.
import _ "github.com/gyreml/gyre/pkg/model/formats"
