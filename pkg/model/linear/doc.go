// Package linear is Gyre's built-in logistic regression ("builtin/logistic",
// bundle format "gyre/logistic") and linear ridge regression
// ("builtin/linear", format "gyre/linear"), with their preprocessing inside
// the model: numeric inputs standardised with the train mean and standard
// deviation (a missing value imputed with the mean), categorical inputs
// one-hot over the most frequent train values plus "other".
//
// Logistic regression minimises Σ log loss + l2/2 · ||w||² by L-BFGS; ridge
// minimises Σ squared error + l2 · ||w||² in closed form (normal equations,
// Cholesky). Both match scikit-learn on standardised features:
// LogisticRegression(C = 1/l2) and Ridge(alpha = l2). Sums run in parallel
// over fixed row chunks, added in order, so a model is the same to the bit
// on any number of cores. Importing the package registers the trainers and
// the formats. docs/models.md is the user's view.
package linear
