// Package train is the contract of Gyre's built-in trainers and their
// registry: a worker looks a trainer up by the name a pipeline gives
// ("builtin/logistic") and calls Train on a table. It is apart from package
// model because trainers read a table.Table, which itself builds on model.
package train

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/gyreml/gyre/pkg/model"
	"github.com/gyreml/gyre/pkg/model/table"
)

// Trainer fits a model on rows of a table.
type Trainer interface {
	// Name is what pipelines call it: "builtin/logistic".
	Name() string
	// Train fits a model on the train rows of t, predicting the target
	// column from the inputs. valid rows (maybe none) are for early stopping
	// and the metrics returned; params are the pipeline's hyperparameters,
	// checked (an unknown one is an error naming the allowed ones); the same
	// inputs and seed give the same model on any machine.
	Train(ctx context.Context, t *table.Table, train, valid []int, target string, inputs []model.Input, params map[string]any, seed uint64) (model.Model, map[string]float64, error)
}

var trainers = struct {
	sync.RWMutex
	m map[string]Trainer
}{m: make(map[string]Trainer)}

// Register makes a trainer available by its name; built-in trainers
// register from their package's init. Registering a name twice panics.
func Register(t Trainer) {
	trainers.Lock()
	defer trainers.Unlock()
	if _, ok := trainers.m[t.Name()]; ok {
		panic("train: trainer " + t.Name() + " registered twice")
	}
	trainers.m[t.Name()] = t
}

// Lookup finds a registered trainer; the error lists the known ones.
func Lookup(name string) (Trainer, error) {
	trainers.RLock()
	t, ok := trainers.m[name]
	trainers.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown trainer %q; known trainers: %s", name, strings.Join(Names(), ", "))
	}
	return t, nil
}

// Names are the registered trainers, sorted.
func Names() []string {
	trainers.RLock()
	defer trainers.RUnlock()
	return slices.Sorted(maps.Keys(trainers.m))
}
