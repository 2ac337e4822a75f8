// Package metrics computes the evaluator's model-quality metrics from a holdout's labels and a
// model's predictions: binary and multiclass classification (accuracy, precision, recall, F1,
// ROC AUC, average precision, log loss, Brier score, confusion matrix, ROC/PR/calibration
// curves, expected calibration error) and regression (RMSE, MAE, R2, MAPE).
//
// Every definition follows scikit-learn (the version Debian ships, 1.2) so that a number in a
// Gyre report can be checked with a few lines of Python; the tests compare each one with
// scikit-learn to 1e-9. Where scikit-learn has a choice the package documents the one it makes:
//
//   - precision, recall and F1 use zero_division=0;
//   - a binary prediction is positive when p >= threshold; a multiclass prediction is the first
//     class with the highest probability (numpy argmax);
//   - log loss clips probabilities to [eps, 1-eps] with eps the float64 machine epsilon and
//     renormalizes each row, as log_loss(eps="auto") does;
//   - PR AUC is average_precision_score (the step-wise sum, not the trapezoid);
//   - the calibration curve is calibration_curve(strategy="uniform"), empty bins left out, and
//     ECE = sum over non-empty bins of count/n * |fraction positive - mean predicted|;
//   - MAPE divides by max(|y|, eps) like mean_absolute_percentage_error, so a zero target gives a
//     huge value rather than an error;
//   - the first ROC point, and the last PR point, have threshold max(score)+1 (scikit-learn 1.2;
//     later versions use +Inf, which JSON cannot carry).
//
// A holdout with a single class has no ROC AUC; such input fails with ErrDegenerate and names
// the class, instead of reporting a number that means nothing.
package metrics
