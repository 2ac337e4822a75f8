package privacy

import "strings"

// columnHints is what a column's name says about its values.
type columnHints struct {
	personal bool // name_hint: a name, address, birth date or contact column
	phone    bool // bare digits are phone numbers
	ssn      bool // bare 9 digits are SSNs
}

// Head nouns that make a column personal by name alone. The head is the last
// word of the name: customer_email is personal, email_verified is not.
var (
	personalHeads = set("surname", "firstname", "lastname", "fullname", "forename", "forenames",
		"givenname", "familyname", "middlename", "maidenname", "username",
		"address", "street", "streetaddress", "dob", "birthdate", "birthday", "dateofbirth",
		"email", "emailaddress", "ssn", "passport")
	phoneHeads = set("phone", "phonenumber", "telephone", "tel", "mobile", "mobilephone", "cellphone",
		"msisdn", "fax", "whatsapp")
	// Words before "name" that make it a person's name (customer_name, not product_name).
	personNames = set("first", "last", "full", "given", "family", "middle", "maiden", "sur", "fore",
		"customer", "patient", "client", "person", "contact", "employee", "member", "holder",
		"cardholder", "applicant", "user", "street", "mother", "father", "spouse")
	// Words before "address" that make it something other than a postal address.
	otherAddresses = set("ip", "mac", "url", "web", "wallet", "contract", "memory")
	numberHeads    = set("number", "no", "num", "nr")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

func hintsFor(column string) columnHints {
	words := nameWords(column)
	for len(words) > 0 && isNumeric(words[len(words)-1]) {
		words = words[:len(words)-1] // address_line_1, phone2
	}
	if len(words) == 0 || words[0] == "is" || words[0] == "has" {
		return columnHints{} // is_mobile, has_email: flags, not contact data
	}
	head := words[len(words)-1]
	prev := ""
	if len(words) > 1 {
		prev = words[len(words)-2]
	}
	compact := strings.Join(words, "")

	var h columnHints
	switch {
	case phoneHeads[head], numberHeads[head] && phoneHeads[prev]:
		h.phone = true
	case head == "ssn", numberHeads[head] && prev == "ssn",
		strings.HasSuffix(compact, "socialsecuritynumber"), strings.HasSuffix(compact, "socialsecurity"):
		h.ssn = true
	}
	h.personal = h.phone || h.ssn || personalHeads[head] && !(head == "address" && otherAddresses[prev]) ||
		head == "name" && (len(words) == 1 || personNames[prev]) ||
		head == "birth" && strings.HasSuffix(compact, "dateofbirth") ||
		head == "date" && prev == "birth" ||
		head == "mail" && prev == "e" ||
		head == "line" && prev == "address" ||
		numberHeads[head] && prev == "passport"
	return h
}

// nameWords splits a column name into lower-case words at punctuation, at
// lower-to-upper case changes and between letters and digits:
// "customerEmail" -> customer email, "DOB" -> dob, "addressLine1" -> address line 1.
func nameWords(name string) []string {
	var words []string
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			words = append(words, strings.ToLower(name[start:end]))
		}
		start = -1
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) {
			flush(i)
			continue
		}
		if start >= 0 {
			p := name[i-1]
			lowerToUpper := p >= 'a' && p <= 'z' && c >= 'A' && c <= 'Z'
			acronymEnd := p >= 'A' && p <= 'Z' && c >= 'A' && c <= 'Z' && i+1 < len(name) && name[i+1] >= 'a' && name[i+1] <= 'z'
			if lowerToUpper || acronymEnd || isDigit(p) != isDigit(c) {
				flush(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(name))
	return words
}

func isNumeric(w string) bool {
	for i := 0; i < len(w); i++ {
		if !isDigit(w[i]) {
			return false
		}
	}
	return true
}
