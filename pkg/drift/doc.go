// Package drift holds the statistics that compare production traffic with
// training data, feature by feature, in two forms.
//
// Exact functions work on raw samples or counts and agree with scipy to
// 1e-6 (the tests run scipy on the same data): PSI over reference-quantile
// bins (Edges), the two-sample Kolmogorov-Smirnov test KS (scipy's
// ks_2samp, exact and asymptotic p-values), Wasserstein (scipy's
// wasserstein_distance), the chi-square test of homogeneity ChiSquare
// (chi2_contingency on the 2×k table) and the Jensen-Shannon distance
// JensenShannon (scipy.spatial.distance.jensenshannon).
//
// Sketch functions work on the bounded state the monitor keeps: a KLL
// sketch per numeric feature and window, category counts per categorical
// one, against the reference profile's KLL and top-k sketches.
// CompareNumeric and CompareCategorical are the entry points. A KLL sketch
// estimates every CDF value to within its rank error ε (KLLRankError: 1.65%
// at k = 200, with 99% confidence), which bounds the sketch values:
//
//   - |D_sketch − D_exact| ≤ ε_ref + ε_cur (KSErrorBound);
//   - |W_sketch − W_exact| ≤ ε_ref·range_ref + ε_cur·range_cur
//     (WassersteinErrorBound);
//   - PSI has no useful worst-case bound (a share near PSIEpsilon makes
//     ln(q/p) steep); the tests hold it to 0.01 + 5% of the exact value,
//     pkg/profile's tolerance, and the Jensen-Shannon distance over the
//     PSI bins to 0.02.
//
// The tests check these on several distributions; observed errors stay
// under a quarter of the KS bound and a few percent of the Wasserstein one.
//
// The sketch KS p-value (NumericScores.KSPValue) is the asymptotic one at
// the sketch's D. The sketches add noise to D (about 0.008 at k = 200 when
// nothing drifted), while on large windows the critical D is far smaller
// (1.36·√(1/n1 + 1/n2) at the 5% level: 0.0019 for a million rows a side),
// so KSPValue is tiny even without drift. NumericScores.KSPValueUpper, the
// p-value at D − KSErrorBound, bounds the exact p-value from above and is
// safe to alert on; on large windows it only fires once D clears the
// bound. Thresholds on D, PSI or Wasserstein are the other way.
//
// PSI conventions (DefaultPSIBins, PSIEpsilon, the bins) are pkg/profile's.
package drift
