package worker

// The built-in trainers and the formats register themselves by name.
import _ "github.com/gyreml/gyre/pkg/model/formats"
