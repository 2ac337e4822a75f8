package drift

import "math"

// This file ports the distribution of the one-sample, two-sided
// Kolmogorov-Smirnov statistic D_n that scipy.stats.kstwo implements
// (scipy/stats/_ksstats.py, scipy 1.10), which ks_2samp's asymptotic method
// evaluates at n = round(n1·n2/(n1+n2)). The algorithm choice is Simard and
// L'Ecuyer's (2011): exact formulas at the ends, Durbin's matrix (as
// Marsaglia, Tsang and Wang compute it) or Pomeranz's recursion for small
// n·d², the one-sided Smirnov sum (doubled) in the tail, Pelz-Good's
// expansion otherwise. The regimes and their cut-offs are scipy's, so the
// p-values agree to rounding, except where smirnovMaxN says otherwise.

const (
	e128  = 0x1p128
	em128 = 0x1p-128
	// minLog is cephes' MINLOG: exp of anything below it underflows.
	minLog = -7.451332191019412076235e2
	// smirnovMaxN: above it the one-sided tail is approximated. scipy sums
	// n terms up to n = 10⁶ (a second a call there, ~70 ns a term here);
	// above 5·10⁴ scipy's approximation is within 2.8e-7 of the sum (5.5e-7
	// for the two-sided p-value; the error falls as 1/n), checked against
	// scipy in the tests, and costs nothing, so a p-value never costs more
	// than a few milliseconds.
	smirnovMaxN = 50_000
)

// kolmogorovSF is scipy.stats.kstwo.sf(x, n): P(D_n > x).
func kolmogorovSF(n int64, x float64) float64 {
	switch {
	case n <= 0 || math.IsNaN(x):
		return math.NaN()
	case x >= 1:
		return 0
	case x <= 0:
		return 1
	}
	nf := float64(n)
	t := nf * x
	if t <= 1 { // Ruben-Gambino: 1/2n ≤ x ≤ 1/n
		if t <= 0.5 {
			return 1
		}
		var cdf float64
		if n <= 140 {
			cdf = 1
			for i := int64(1); i <= n; i++ {
				cdf *= float64(i) * (1 / nf) * (2*t - 1)
			}
		} else {
			cdf = math.Exp(logFactorialOverPower(nf) + nf*math.Log(2*t-1))
		}
		return clip01(1 - cdf)
	}
	if t >= nf-1 { // Ruben-Gambino
		return clip01(2 * math.Pow(1-x, nf))
	}
	if x >= 0.5 { // the two one-sided tails cannot both be crossed
		return clip01(2 * smirnovSF(n, x))
	}
	nxx := t * x
	if n <= 140 {
		switch {
		case nxx <= 0.754693:
			return clip01(1 - kolmogorovDurbin(n, x))
		case nxx <= 4:
			return clip01(1 - kolmogorovPomeranz(n, x))
		}
		return clip01(2 * smirnovSF(n, x))
	}
	switch {
	case nxx >= 370:
		return 0
	case nxx >= 2.2:
		return clip01(2 * smirnovSF(n, x))
	}
	var cdf float64
	if n <= 100_000 && nf*math.Pow(x, 1.5) <= 1.4 {
		cdf = kolmogorovDurbin(n, x)
	} else {
		cdf = kolmogorovPelzGood(n, x)
	}
	return clip01(1 - cdf)
}

func clip01(p float64) float64 { return min(max(p, 0), 1) }

// stirlingCoeffs are B_2j/(2j)/(2j-1) for j = 8 down to 1.
var stirlingCoeffs = [...]float64{
	-2.955065359477124183e-2, 6.4102564102564102564e-3,
	-1.9175269175269175269e-3, 8.4175084175084175084e-4,
	-5.952380952380952381e-4, 7.9365079365079365079e-4,
	-2.7777777777777777778e-3, 8.3333333333333333333e-2,
}

// logFactorialOverPower is log(n!/n^n), by Stirling's series with n·log n
// removed up front so nothing cancels.
func logFactorialOverPower(n float64) float64 {
	rn := 1 / n
	return math.Log(n)/2 - n + math.Log(2*math.Pi)/2 + rn*polyval(stirlingCoeffs[:], rn/n)
}

// polyval is numpy.polyval: c[0]·x^(len-1) + ... + c[len-1].
func polyval(c []float64, x float64) float64 {
	var s float64
	for _, ci := range c {
		s = s*x + ci
	}
	return s
}

// kolmogorovDurbin is P(D_n ≤ d) by Durbin's matrix algorithm, computing
// the k-th diagonal entry of H^n by repeated squaring with the exponent
// kept apart (Marsaglia, Tsang and Wang 2003).
func kolmogorovDurbin(n int64, d float64) float64 {
	if d >= 1 {
		return 1
	}
	nd := float64(n) * d
	if nd <= 0.5 {
		return 0
	}
	k := int(math.Ceil(nd))
	h := float64(k) - nd
	m := 2*k - 1

	v := make([]float64, m) // first column: (1 − h^j)/j!
	w := make([]float64, m) // 1/(j−1)!
	fac := 1.0
	for j := 1; j <= m; j++ {
		w[j-1] = fac
		fac /= float64(j)
		v[j-1] = (1 - math.Pow(h, float64(j))) * fac
	}
	tt := math.Pow(max(2*h-1, 0), float64(m)) - 2*math.Pow(h, float64(m))
	v[m-1] = (1 + tt) * fac

	H := newSquare(m)
	for i := 1; i < m; i++ {
		for r := i - 1; r < m; r++ {
			H.set(r, i, w[r-i+1])
		}
	}
	for r := range m {
		H.set(r, 0, v[r])
	}
	for c := range m {
		H.set(m-1, c, v[m-1-c])
	}

	P := identity(m)
	tmp := newSquare(m)
	expnt, hExpnt := 0, 0
	for nn := n; nn > 0; nn /= 2 {
		if nn%2 == 1 {
			P.mul(H, tmp)
			P, tmp = tmp, P
			expnt += hExpnt
		}
		H.mul(H, tmp)
		H, tmp = tmp, H
		hExpnt *= 2
		if math.Abs(H.at(k-1, k-1)) > e128 {
			for i := range H.a {
				H.a[i] /= e128
			}
			hExpnt += 128
		}
	}
	p := P.at(k-1, k-1)
	nf := float64(n)
	for i := int64(1); i <= n; i++ { // times n!/n^n
		p = float64(i) * p / nf
		if math.Abs(p) < em128 {
			p *= e128
			expnt -= 128
		}
	}
	return clip01(math.Ldexp(p, expnt))
}

// square is a dense m×m matrix, row-major.
type square struct {
	m int
	a []float64
}

func newSquare(m int) *square { return &square{m, make([]float64, m*m)} }

func identity(m int) *square {
	s := newSquare(m)
	for i := range m {
		s.a[i*m+i] = 1
	}
	return s
}

func (s *square) at(r, c int) float64     { return s.a[r*s.m+c] }
func (s *square) set(r, c int, x float64) { s.a[r*s.m+c] = x }

// mul writes s·o into out (which must be neither s nor o).
func (s *square) mul(o, out *square) {
	m := s.m
	clear(out.a)
	for i := range m {
		row := out.a[i*m : (i+1)*m]
		for k := range m {
			x := s.a[i*m+k]
			if x == 0 {
				continue
			}
			ok := o.a[k*m : (k+1)*m]
			for j := range row {
				row[j] += x * ok[j]
			}
		}
	}
}

// kolmogorovPomeranz is P(D_n ≤ x) by Pomeranz's recursion (1974): 2n+1
// convolutions of a sliding row with (nearly) Poisson weights.
func kolmogorovPomeranz(n int64, x float64) float64 {
	nf := float64(n)
	t := nf * x
	ll := int64(math.Floor(t))
	f := t - float64(ll)
	g := min(f, 1-f)
	var ceilf, roundf int64
	if f > 0 {
		ceilf = 1
	}
	if f > 0.5 {
		roundf = 1
	}
	npwrs := 2 * (ll + 1)
	gpower := make([]float64, npwrs)      // (g/n)^m/m!
	twogpower := make([]float64, npwrs)   // (2g/n)^m/m!
	onem2gpower := make([]float64, npwrs) // ((1−2g)/n)^m/m!
	gpower[0], twogpower[0], onem2gpower[0] = 1, 1, 1
	gn, g2n, omg2n := g/nf, 2*g/nf, (1-2*g)/nf
	for m := int64(1); m < npwrs; m++ {
		gpower[m] = gpower[m-1] * gn / float64(m)
		twogpower[m] = twogpower[m-1] * g2n / float64(m)
		onem2gpower[m] = onem2gpower[m-1] * omg2n / float64(m)
	}

	V0, V1 := make([]float64, npwrs), make([]float64, npwrs)
	V1[0] = 1
	var V0s, V1s int64
	expnt := 0
	j1, j2 := pomeranzBounds(0, n, ll, ceilf, roundf)
	conv := make([]float64, 2*npwrs)
	for i := int64(1); i < 2*n+2; i++ {
		k1 := j1
		V0, V1 = V1, V0
		V0s, V1s = V1s, V0s
		clear(V1)
		j1, j2 = pomeranzBounds(i, n, ll, ceilf, roundf)
		pwrs := onem2gpower
		switch {
		case i == 1 || i == 2*n+1:
			pwrs = gpower
		case i%2 == 1:
			pwrs = twogpower
		}
		ln2 := j2 - k1 + 1
		if ln2 <= 0 {
			continue
		}
		// numpy slices stop at the end of the array.
		a := V0[k1-V0s : min(k1-V0s+ln2, npwrs)]
		b := pwrs[:min(ln2, npwrs)]
		full := convolve(a, b, conv)
		start, length := j1-k1, j2-j1+1
		copy(V1[:length], full[start:min(start+length, int64(len(full)))])
		vmax := 0.0
		for _, y := range V1 {
			vmax = max(vmax, y)
		}
		if 0 < vmax && vmax < em128 {
			for k := range V1 {
				V1[k] *= e128
			}
			expnt -= 128
		}
		V1s = V0s + j1 - k1
	}
	ans := V1[n-V1s]
	for m := int64(1); m <= n; m++ { // times n!
		if math.Abs(ans) > e128 {
			ans *= em128
			expnt += 128
		}
		ans *= float64(m)
	}
	return clip01(math.Ldexp(ans, expnt))
}

// pomeranzBounds is the range of row i that can be non-zero.
func pomeranzBounds(i, n, ll, ceilf, roundf int64) (int64, int64) {
	var j1, j2 int64
	if i == 0 {
		j1, j2 = -ll-ceilf-1, ll+ceilf-1
	} else {
		half, odd := (i+1)/2, (i+1)%2
		switch {
		case odd == 0 && half == n+1:
			j1, j2 = n-ll-ceilf-1, n+ll+ceilf-1
		case odd == 0:
			j1, j2 = half-1-ll-roundf-1, half+ll-1+ceilf-1
		default:
			j1, j2 = half-1-ll-1, half+ll+roundf-1
		}
	}
	return max(j1+2, 0), min(j2, n)
}

// convolve is numpy.convolve(a, b) (mode "full"), written into buf.
func convolve(a, b, buf []float64) []float64 {
	if len(a) == 0 || len(b) == 0 {
		return buf[:0]
	}
	out := buf[:len(a)+len(b)-1]
	clear(out)
	for i, x := range a {
		for j, y := range b {
			out[i+j] += x * y
		}
	}
	return out
}

// kolmogorovPelzGood is Pelz and Good's (1976) approximation of
// P(D_n ≤ x): Li-Chien and Korolyuk's expansion in 1/√n, its terms
// rewritten with Jacobi theta identities to converge for small x√n.
func kolmogorovPelzGood(n int64, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	const (
		pi2 = math.Pi * math.Pi
		pi4 = pi2 * pi2
		pi6 = pi4 * pi2
	)
	sqrt2pi := math.Sqrt(2 * math.Pi)
	z := math.Sqrt(float64(n)) * x
	z2, z3, z4, z6 := z*z, z*z*z, math.Pow(z, 4), math.Pow(z, 6)

	qlog := -pi2 / 8 / z2
	if qlog < -708 {
		return 0
	}
	q := math.Exp(qlog)

	k1a, k1b := -z2, pi2/4
	k2a := 6*z6 + 2*z4
	k2b := (2*z4 - 5*z2) * pi2 / 4
	k2c := pi4 * (1 - 2*z2) / 16
	k3d := pi6 * (5 - 30*z2) / 64
	k3c := pi4 * (-60*z2 + 212*z4) / 16
	k3b := pi2 * (135*z4 - 96*z6) / 4
	k3a := -30*z6 - 90*math.Pow(z, 8)

	// Horner in q^8k over the odd terms of Σ c_i q^(i²).
	var K [4]float64
	maxk := int(math.Ceil(16 * z / math.Pi))
	for k := maxk; k > 0; k-- {
		m := float64(2*k - 1)
		m2, m4, m6 := m*m, math.Pow(m, 4), math.Pow(m, 6)
		qpower := math.Pow(q, float64(8*k))
		c := [4]float64{
			1,
			k1a + k1b*m2,
			k2a + k2b*m2 + k2c*m4,
			k3a + k3b*m2 + k3c*m4 + k3d*m6,
		}
		for i := range K {
			K[i] = K[i]*qpower + c[i]
		}
	}
	div := [4]float64{z, 6 * z4, 72 * math.Pow(z, 7), 6480 * math.Pow(z, 10)}
	for i := range K {
		K[i] = K[i] * q * sqrt2pi / div[i]
	}

	// The terms over all integers k, for K2 and K3.
	q = math.Exp(-pi2 / 2 / z2)
	sqrt3z := math.Sqrt(3) * z
	var k2extra, k3extra float64
	for k := maxk; k > 0; k-- {
		kf := float64(k)
		k2 := kf * kf
		qp := math.Pow(q, k2)
		kpi := math.Pi * kf
		k2extra += k2 * qp
		k3extra += (sqrt3z + kpi) * (sqrt3z - kpi) * k2 * qp
	}
	K[2] += k2extra * pi2 * sqrt2pi / (-36 * z3)
	K[3] += k3extra * pi2 * sqrt2pi / (216 * z6)
	var sum float64
	for i := range K {
		sum += K[i] / math.Pow(float64(n), float64(i)/2)
	}
	return sum
}

// smirnovSF is scipy.special.smirnov(n, x): P(D_n^+ ≥ x) for the
// one-sided statistic, by the Smirnov / Birnbaum-Tingey sum of positive
// terms
//
//	x · Σ_{v=0}^{⌊n(1−x)⌋} C(n,v) (x + v/n)^(v−1) (1 − x − v/n)^(n−v)
//
// evaluated in logarithms, with scipy's closed forms at the ends and its
// approximation exp(−(6nx+1)²/18n) for n above smirnovMaxN.
func smirnovSF(n int64, x float64) float64 {
	switch {
	case n <= 0 || !(x >= 0 && x <= 1):
		return math.NaN()
	case n == 1:
		return 1 - x
	case x == 0:
		return 1
	case x == 1:
		return 0
	}
	nf := float64(n)
	// floor(n·x) and its remainder from the exact product, as scipy does
	// in double-double.
	hi := nf * x
	lo := math.FMA(nf, x, -hi)
	nxfl := math.Floor(hi)
	alpha := (hi - nxfl) + lo
	if alpha < 0 {
		nxfl--
		alpha++
	}
	if alpha >= 1 {
		nxfl++
		alpha = 0
	}
	switch {
	case nxfl == 0 || (nxfl == 1 && alpha == 0): // x ≤ 1/n
		return 1 - x*math.Pow(1+x, nf-1)
	case -2*nf*x*x < minLog:
		return 0
	case nxfl >= nf-1:
		return math.Pow(1-x, nf)
	case n > smirnovMaxN:
		// p ≈ exp(−(6nx+1)²/18n)
		logp := -math.Pow(6*nf*x+1, 2) / 18 / nf
		if logp < -math.Ln2 {
			return math.Exp(logp)
		}
		return 1 - (-math.Expm1(logp))
	}
	// v runs to ⌊n(1−x)⌋, less the term that is zero when n·x is whole.
	last := int64(nf - nxfl - 1)
	var sum, logC float64 // logC = ln C(n, v)
	for v := int64(0); v <= last; v++ {
		vf := float64(v)
		up := x + vf/nf
		down := (nf-vf)/nf - x
		if down <= 0 {
			break
		}
		a := math.Exp(logC + (vf-1)*math.Log(up) + (nf-vf)*math.Log(down))
		logC += math.Log((nf - vf) / (vf + 1))
		if a == 0 && v > n/2 {
			break
		}
		sum += a
		// Safe to stop once the rest cannot reach the last bit (scipy's test).
		if a > 0 && 4*float64(last-v)*a < 0x1p-52*sum && v > 0 {
			break
		}
	}
	return clip01(x * sum)
}
