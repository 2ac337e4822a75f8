// Package model is what every model Gyre trains or imports looks like to the
// rest of the platform: its inputs, its task, and Predict. The evaluator, the
// inference server and the trainers share it, so a model scores alike
// everywhere.
package model

import "errors"

// Task is what a model predicts.
type Task string

const (
	Binary     Task = "binary"
	Multiclass Task = "multiclass"
	Regression Task = "regression"
)

// Kind is how an input is read.
type Kind string

const (
	Numeric     Kind = "numeric"
	Categorical Kind = "categorical"
)

// Input is one feature a model reads, by name.
type Input struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
}

// Value is one input value of one row. Numeric inputs use F, categorical S;
// Null marks a missing value (models handle missing values themselves).
type Value struct {
	F    float64
	S    string
	Null bool
}

// Row holds a value for each of the model's Inputs, in order.
type Row []Value

// Prediction is a model's answer for one row.
type Prediction struct {
	// Label is the predicted class (classification) or "" (regression).
	Label string `json:"label,omitempty"`
	// Value is the regression output, or the positive-class probability
	// for binary classification.
	Value float64 `json:"value"`
	// Probabilities per class, in Classes() order (classification).
	Probabilities []float64 `json:"probabilities,omitempty"`
}

// Model scores rows. Implementations are safe for concurrent Predict calls.
type Model interface {
	Inputs() []Input
	Task() Task
	// Classes are the class labels (classification), nil for regression.
	Classes() []string
	// Predict fills out[i] for rows[i]; len(out) == len(rows).
	Predict(rows []Row, out []Prediction) error
}

// ErrInput is a row that does not fit the model's inputs.
var ErrInput = errors.New("input does not match the model")
