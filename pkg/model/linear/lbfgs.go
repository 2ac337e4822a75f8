package linear

import (
	"context"
	"fmt"
	"math"
)

// objective computes f(x) and writes its gradient into grad.
type objective func(x, grad []float64) float64

// lbfgsResult is where the minimiser stopped.
type lbfgsResult struct {
	iterations int
	converged  bool
	f          float64
}

// lbfgsMemory is how many correction pairs approximate the inverse Hessian.
const lbfgsMemory = 10

// minimize runs L-BFGS (Nocedal & Wright, algorithm 7.4) from x, in place,
// with a backtracking line search on the Armijo condition. It stops when
// the largest gradient component is at most gtol, when f no longer
// decreases beyond rounding, or after maxIter iterations.
func minimize(ctx context.Context, f objective, x []float64, maxIter int, gtol float64) (lbfgsResult, error) {
	n := len(x)
	g := make([]float64, n)
	fx := f(x, g)
	if math.IsNaN(fx) || math.IsInf(fx, 0) {
		return lbfgsResult{}, fmt.Errorf("objective is %v at the start", fx)
	}
	s := make([][]float64, lbfgsMemory)
	y := make([][]float64, lbfgsMemory)
	rho := make([]float64, lbfgsMemory)
	alpha := make([]float64, lbfgsMemory)
	for k := range s {
		s[k], y[k] = make([]float64, n), make([]float64, n)
	}
	d, xNew, gNew := make([]float64, n), make([]float64, n), make([]float64, n)
	stored, newest := 0, -1
	res := lbfgsResult{f: fx}
	for res.iterations < maxIter {
		if normInf(g) <= gtol {
			res.converged = true
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// d = -H g by the two-loop recursion.
		for i := range d {
			d[i] = -g[i]
		}
		for k := range stored {
			i := (newest - k + lbfgsMemory) % lbfgsMemory
			alpha[i] = rho[i] * dotv(s[i], d)
			axpy(-alpha[i], y[i], d)
		}
		if stored > 0 {
			scale(dotv(s[newest], y[newest])/dotv(y[newest], y[newest]), d)
		}
		for k := stored - 1; k >= 0; k-- {
			i := (newest - k + lbfgsMemory) % lbfgsMemory
			beta := rho[i] * dotv(y[i], d)
			axpy(alpha[i]-beta, s[i], d)
		}
		slope := dotv(g, d)
		if slope >= 0 {
			// Not a descent direction (rounding): start again from steepest descent.
			for i := range d {
				d[i] = -g[i]
			}
			slope, stored = dotv(g, d), 0
		}
		step := 1.0
		if stored == 0 {
			step = min(1, 1/math.Sqrt(-slope))
		}
		var fNew float64
		accepted := false
		for range 60 {
			for i := range x {
				xNew[i] = x[i] + step*d[i]
			}
			fNew = f(xNew, gNew)
			if fNew <= fx+1e-4*step*slope {
				accepted = true
				break
			}
			step /= 2
		}
		if !accepted {
			// No decrease is left to find at float64 precision.
			res.converged = normInf(g) <= gtol
			return res, nil
		}
		res.iterations++
		var sy, ss, yy float64
		for i := range x {
			si, yi := xNew[i]-x[i], gNew[i]-g[i]
			sy, ss, yy = sy+si*yi, ss+si*si, yy+yi*yi
		}
		// A pair with too little curvature would spoil the approximation.
		if sy > 1e-12*math.Sqrt(ss*yy) {
			newest = (newest + 1) % lbfgsMemory
			for i := range x {
				s[newest][i], y[newest][i] = xNew[i]-x[i], gNew[i]-g[i]
			}
			rho[newest] = 1 / sy
			stored = min(stored+1, lbfgsMemory)
		}
		copy(x, xNew)
		copy(g, gNew)
		decrease := fx - fNew
		fx, res.f = fNew, fNew
		if decrease <= 1e-15*max(math.Abs(fx), 1) {
			res.converged = normInf(g) <= gtol
			return res, nil
		}
	}
	res.converged = normInf(g) <= gtol
	return res, nil
}

func dotv(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func axpy(a float64, x, y []float64) {
	for i := range x {
		y[i] += a * x[i]
	}
}

func scale(a float64, x []float64) {
	for i := range x {
		x[i] *= a
	}
}

func normInf(x []float64) float64 {
	var m float64
	for _, v := range x {
		m = max(m, math.Abs(v))
	}
	return m
}
