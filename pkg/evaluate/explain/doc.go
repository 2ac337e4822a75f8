// Package explain says which inputs a model leans on, for the evaluator's
// report and gates: permutation importance for any model.Model, and exact
// TreeSHAP (path-dependent, Lundberg et al. 2018, Algorithm 2) with mean
// |SHAP| per input for Gyre's gradient-boosted trees.
package explain
