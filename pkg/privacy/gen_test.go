package privacy

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
)

// Generators of valid personal data for tests. They compute check digits
// with the textbook formulas, written independently of the detectors.

func randDigits(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + r.IntN(10)))
	}
	return b.String()
}

// genCard returns a card number with this prefix and length whose last digit
// makes the Luhn sum a multiple of 10.
func genCard(r *rand.Rand, prefix string, length int) string {
	body := prefix + randDigits(r, length-1-len(prefix))
	for check := '0'; check <= '9'; check++ {
		if luhnSum(body+string(check))%10 == 0 {
			return body + string(check)
		}
	}
	panic("unreachable")
}

func luhnSum(number string) int {
	sum := 0
	for i := range number {
		d := int(number[len(number)-1-i] - '0')
		if i%2 == 1 {
			d = d*2/10 + d*2%10
		}
		sum += d
	}
	return sum
}

// groupCard writes a card number in groups of four separated by sep.
func groupCard(n, sep string) string {
	var parts []string
	for len(n) > 4 {
		parts = append(parts, n[:4])
		n = n[4:]
	}
	return strings.Join(append(parts, n), sep)
}

// genCPF returns a valid CPF: each check digit is 11 - (weighted sum mod 11),
// 0 when that is 10 or 11, with weights 10..2 and then 11..2.
func genCPF(r *rand.Rand, formatted bool) string {
	d := randDigits(r, 9)
	for _, top := range []int{10, 11} {
		sum := 0
		for i := range d {
			sum += int(d[i]-'0') * (top - i)
		}
		check := 11 - sum%11
		if check >= 10 {
			check = 0
		}
		d += fmt.Sprint(check)
	}
	if formatted {
		return d[:3] + "." + d[3:6] + "." + d[6:9] + "-" + d[9:]
	}
	return d
}

// genCNPJ returns a valid CNPJ (branch 0001) with the published weight tables.
func genCNPJ(r *rand.Rand, formatted bool) string {
	d := randDigits(r, 8) + "0001"
	for _, w := range [][]int{{5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}, {6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}} {
		sum := 0
		for i, x := range w {
			sum += int(d[i]-'0') * x
		}
		check := 0
		if sum%11 >= 2 {
			check = 11 - sum%11
		}
		d += fmt.Sprint(check)
	}
	if formatted {
		return d[:2] + "." + d[2:5] + "." + d[5:8] + "/" + d[8:12] + "-" + d[12:]
	}
	return d
}

// genIBAN returns a valid IBAN for a country with an all-digit BBAN of the
// right length: check digits are 98 - (BBAN + country as digits + "00") mod 97.
func genIBAN(r *rand.Rand, country string, length int) string {
	bban := randDigits(r, length-4)
	num := bban + ibanLetters(country) + "00"
	n, _ := new(big.Int).SetString(num, 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	return fmt.Sprintf("%s%02d%s", country, check, bban)
}

func ibanLetters(s string) string {
	var b strings.Builder
	for _, c := range s {
		fmt.Fprint(&b, c-'A'+10)
	}
	return b.String()
}
